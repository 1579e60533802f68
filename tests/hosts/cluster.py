"""The simulated control plane seen from a test: read its Nodes and events, flip its switches.

It uses the same code as the simulated `kubeadm`/`kubectl` the hosts run (ansible/demo/fakek8s.py
plus tests/hosts/shims/cloud.py), under the same lock, so what a test reads is what a master's
`kubectl` would answer at that moment (pending cloud-controller deletions included).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.hosts.sshd import DEMO_BIN, SHIMS

for _path in (str(DEMO_BIN.parent), str(SHIMS)):
    if _path not in sys.path:
        sys.path.append(_path)

import cloud  # noqa: E402
import fakek8s as fakek8s  # noqa: E402  (tests use it through this module)

cloud.install()


class FakeCluster:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Node name → {uid, control_plane, unschedulable, ...}, as `kubectl get nodes` sees it."""
        with fakek8s.cluster(self.state_dir) as state:
            return dict(state["nodes"])

    def events(self, node: str | None = None) -> list[dict[str, Any]]:
        with fakek8s.cluster(self.state_dir) as state:
            return [e for e in state["events"] if node in (None, e["involvedObject"]["name"])]

    def joins(self, node: str) -> int:
        """How many times `node` registered (kubeadm init or join) since the state dir was made."""
        with fakek8s.cluster(self.state_dir) as state:
            return int(state["joins"].get(node, 0))

    def vanish(self, node: str, *, joins: int, after: float = 0.3) -> None:
        """Simulate the cloud node controller: delete `node` `after` seconds after each of its
        next `joins` registrations (counted from the registrations so far)."""
        with fakek8s.cluster(self.state_dir) as state:
            rule = {"joins": state["joins"].get(node, 0) + joins, "after": after}
            state.setdefault("cloud", {}).setdefault("vanish", {})[node] = rule

    def refuse_joins(self, node: str, *, times: int) -> None:
        """Make the node's next `times` joins fail (kubeadm join exits 1, nothing registers)."""
        with fakek8s.cluster(self.state_dir) as state:
            state.setdefault("cloud", {}).setdefault("refuse", {})[node] = times

    def delete_node(self, node: str) -> None:
        """Delete the Node object behind clusterm's back (drift: the node drops out)."""
        with fakek8s.cluster(self.state_dir) as state:
            state["nodes"].pop(node, None)

    def register_node(self, node: str, *, control_plane: bool = False) -> None:
        """The Node comes back (e.g. its kubelet re-registers after a restart)."""
        with fakek8s.cluster(self.state_dir) as state:
            fakek8s.register_node(state, node, control_plane=control_plane)
