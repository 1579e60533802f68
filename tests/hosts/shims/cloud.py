#!/usr/bin/env python3
"""TEST ONLY: the demo's simulated kubeadm/kubectl plus a simulated cloud node controller.

The field failure described in docs/contracts.md#vanishing-node: a Node registers, then the
cloud provider's node lifecycle controller deletes it because the cloud does not know a machine of
that name. The switch is kept in the cluster's state (set it with
`FakeCluster.vanish()` from tests/hosts/cluster.py):

    state["cloud"] = {"vanish": {"<node>": {"joins": K, "after": SECONDS}},
                      "refuse": {"<node>": N}}

For the node's first K registrations (joins), the Node is deleted SECONDS after it registered,
with the event the real controller records (reason DeletingNode), but only once a master has read
it (`kubectl get node`): on a loaded test machine a master might otherwise never see it, and the
tests want "registered, seen, then gone" every time. Like every controller here it
runs whenever the cluster is accessed, so no background process is needed.

`refuse` makes the node's next N `kubeadm join` fail before registering, as a join does when the
kubelet cannot reach the API server in time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "ansible" / "demo"))

import fakek8s
import shim


def schedule_vanish(state: fakek8s.State, name: str) -> None:
    rule = state.get("cloud", {}).get("vanish", {}).get(name)
    if rule and state["joins"][name] <= rule["joins"]:
        state["nodes"][name]["delete_at"] = time.time() + rule["after"]


def refuse_join(state: fakek8s.State, name: str) -> str | None:
    refuse = state.get("cloud", {}).get("refuse", {})
    if refuse.get(name, 0) <= 0:
        return None
    refuse[name] -= 1
    return (
        "error execution phase kubelet-start: error uploading crisocket: "
        "timed out waiting for the condition"
    )


def delete_unknown_nodes(state: fakek8s.State) -> None:
    for name, node in list(state["nodes"].items()):
        due = node.get("delete_at") is not None and time.time() >= node["delete_at"]
        if due and node.get("seen"):
            fakek8s.record_event(
                state,
                node=name,
                reason="DeletingNode",
                message=(
                    f"Deleting Node {name} because it's not present according to cloud provider"
                ),
                source="cloud-node-lifecycle-controller",
            )
            del state["nodes"][name]


def install() -> None:
    if delete_unknown_nodes not in fakek8s.CONTROLLERS:
        fakek8s.CONTROLLERS.append(delete_unknown_nodes)
        fakek8s.JOIN_HOOKS.append(schedule_vanish)
        fakek8s.JOIN_CHECKS.append(refuse_join)


if __name__ == "__main__":
    install()
    sys.exit(shim.main(sys.argv))
