"""DEMO ONLY: a simulated Kubernetes control plane behind fake `kubeadm` and `kubectl` commands.

No container, API server or kubelet runs. The "cluster" is one JSON file in `FAKEK8S_STATE` (a
directory shared by every simulated node); each node's local files (kubeconfigs, written by
`kubeadm init`/`join`, removed by `kubeadm reset`) live under its `FAKEHOST_ROOT`, as the real
ones live under `/etc/kubernetes`. The commands accept the arguments clusterm's playbooks use,
with the real tools' exit codes and messages where the playbooks depend on them:

- `kubeadm init` creates a cluster (a new one each time, like the real thing) and registers the
  Node; `kubeadm join` checks the token and CA hash, refuses when a Node of that name already
  exists, and registers the Node with a fresh UID; `kubeadm reset` only cleans the node (the Node
  object stays).
- `kubectl get nodes|node X|events -o json`, `delete node`, `apply -f`; `cordon`, `uncordon` and
  `drain` keep the Node's `spec.unschedulable` in the cluster file (so it outlasts the run), print
  kubectl's lines (`node/X cordoned`, `node/X already cordoned`, `node/X drained`) and record the
  kubelet's `NodeNotSchedulable`/`NodeSchedulable` events.

This module holds the cluster's state; fakekubeadm.py and fakekubectl.py the two commands.

Tests extend it through `CONTROLLERS` (run on every access to the cluster, like Kubernetes
controllers reconciling), `JOIN_CHECKS` (can fail a join) and `JOIN_HOOKS` (after a Node
registers); see tests/hosts/shims/.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakehost

State = dict[str, Any]
CONTROLLERS: list[Callable[[State], None]] = []
JOIN_HOOKS: list[Callable[[State, str], None]] = []
# Checked before a join registers its Node: a message makes that join fail with it.
JOIN_CHECKS: list[Callable[[State, str], str | None]] = []
KUBE_VERSION = "v1.31.2"


def state_dir() -> Path:
    path = os.environ.get("FAKEK8S_STATE")
    if not path:
        sys.exit("fakek8s: FAKEK8S_STATE must name the simulated cluster's state directory")
    return Path(path)


@contextlib.contextmanager
def cluster(directory: Path | None = None) -> Iterator[State]:
    default: State = {
        "cluster_id": None,
        "nodes": {},
        "events": [],
        "tokens": [],
        "joins": {},
    }
    with fakehost.locked_json((directory or state_dir()) / "cluster.json", default) as state:
        for controller in CONTROLLERS:
            controller(state)
        yield state


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_event(state: State, *, node: str, reason: str, message: str, source: str) -> None:
    uid = state["nodes"].get(node, {}).get("uid", "")
    state["events"].append(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{node}.{secrets.token_hex(8)}",
                "namespace": "default",
            },
            "involvedObject": {"kind": "Node", "name": node, "uid": uid},
            "reason": reason,
            "message": message,
            "type": "Normal",
            "source": {"component": source},
            "count": 1,
            "firstTimestamp": now_iso(),
            "lastTimestamp": now_iso(),
        }
    )


def register_node(state: State, name: str, *, control_plane: bool) -> None:
    state["nodes"][name] = {
        "uid": str(uuid.uuid4()),
        "created": now_iso(),
        "registered_at": time.time(),
        "control_plane": control_plane,
        "unschedulable": False,
    }
    state["joins"][name] = state["joins"].get(name, 0) + 1
    record_event(
        state,
        node=name,
        reason="RegisteredNode",
        message=f"Node {name} event: Registered Node {name} in Controller",
        source="node-controller",
    )
    for hook in JOIN_HOOKS:
        hook(state, name)


def node_object(name: str, node: dict[str, Any]) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if node["control_plane"]:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": node["uid"],
            "creationTimestamp": node["created"],
        },
        "spec": {"unschedulable": True} if node["unschedulable"] else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {"kubeletVersion": KUBE_VERSION},
        },
    }


def etc_path(*parts: str) -> Path:
    """A path under the simulated node's /etc/kubernetes."""
    return fakehost.node_root().joinpath("etc/kubernetes", *parts)


def write_kubeconfig(path: Path, state: State, user: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Real kubeconfigs are YAML; JSON is YAML too. The cluster id stands in for the CA: a kubeconfig
    # from a previous cluster is rejected, as a stale certificate would be.
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kubernetes", "cluster": {"server": state["endpoint"]}}],
                "users": [{"name": user}],
                "fake-cluster-id": state["cluster_id"],
            }
        )
    )


def parse_args(args: list[str], with_value: set[str]) -> tuple[list[str], dict[str, str]]:
    words: list[str] = []
    opts: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        if arg.startswith("-"):
            key, eq, value = arg.partition("=")
            if not eq and key in with_value:
                value = next(it, "")
            opts[key] = value
        else:
            words.append(arg)
    return words, opts
