"""DEMO ONLY: the simulated `kubectl` (get, wait, cordon, uncordon, drain, delete, apply).

See fakek8s.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import fakek8s

KUBECTL_VALUES = {
    "--kubeconfig", "-o", "--output", "--field-selector", "--timeout", "-f", "--filename",
    "--grace-period", "--request-timeout", "--for",
}  # fmt: skip


def kubectl(args: list[str]) -> int:
    words, opts = fakek8s.parse_args(args, KUBECTL_VALUES)
    kubeconfig = opts.get("--kubeconfig") or os.environ.get("KUBECONFIG")
    if not kubeconfig or not Path(kubeconfig).exists():
        print(
            "The connection to the server localhost:8080 was refused - did you specify the right "
            "host or port?",
            file=sys.stderr,
        )
        return 1
    if words[:1] == ["wait"]:
        return _wait(kubeconfig, words, opts)
    with fakek8s.cluster() as state:
        if not _trusted(kubeconfig, state):
            return 1
        return _kubectl(state, words, opts)


def _trusted(kubeconfig: str, state: fakek8s.State) -> bool:
    if json.loads(Path(kubeconfig).read_text()).get("fake-cluster-id") == state["cluster_id"]:
        return True
    print(
        "Unable to connect to the server: tls: failed to verify certificate: "
        "x509: certificate signed by unknown authority",
        file=sys.stderr,
    )
    return False


def _wait(kubeconfig: str, words: list[str], opts: dict[str, str]) -> int:
    """`kubectl wait --for=create node/X --timeout=Ns` (kubectl 1.31+), polling as it does."""
    kind, _, name = (words[1:2] or [""])[0].partition("/")
    if opts.get("--for") != "create" or kind not in ("node", "nodes") or not name:
        print(
            "fakek8s: only `kubectl wait --for=create node/NAME` is simulated",
            file=sys.stderr,
        )
        return 64
    deadline = time.monotonic() + _seconds(opts.get("--timeout", "30s"))
    while True:
        with fakek8s.cluster() as state:
            if not _trusted(kubeconfig, state):
                return 1
            if name in state["nodes"]:
                print(f"node/{name} condition met")
                return 0
        if time.monotonic() >= deadline:
            print(
                f"error: timed out waiting for the condition on nodes/{name}",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.2)


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    return float(duration)


def _kubectl(state: fakek8s.State, words: list[str], opts: dict[str, str]) -> int:
    output = opts.get("-o") or opts.get("--output") or ""
    verb, kind, names = [*words, "", ""][0], [*words, "", ""][1], words[2:]
    nodes = state["nodes"]
    if verb == "get" and kind in ("node", "nodes", "no") and names:
        name = names[0]
        if name not in nodes:
            print(
                f'Error from server (NotFound): nodes "{name}" not found',
                file=sys.stderr,
            )
            return 1
        nodes[name]["seen"] = True  # for CONTROLLERS that act on Nodes someone has looked at
        return _print(output, [(name, nodes[name])], single=True)
    if verb == "get" and kind in ("node", "nodes", "no"):
        return _print(output, sorted(nodes.items()), single=False)
    if verb == "get" and kind in ("events", "event", "ev"):
        items = [e for e in state["events"] if _selected(e, opts.get("--field-selector", ""))]
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
        return 0
    if verb in ("drain", "cordon", "uncordon") and kind:
        if kind not in nodes:
            print(
                f'Error from server (NotFound): nodes "{kind}" not found',
                file=sys.stderr,
            )
            return 1
        _cordon(state, kind, desired=verb != "uncordon")
        if verb == "drain":
            # No pods run in the simulation: nothing to evict.
            print(f"node/{kind} drained")
        return 0
    if verb == "delete" and kind in ("node", "nodes", "no") and names:
        for name in names:
            if nodes.pop(name, None) is not None:
                print(f'node "{name}" deleted')
            elif "--ignore-not-found" not in opts:
                print(
                    f'Error from server (NotFound): nodes "{name}" not found',
                    file=sys.stderr,
                )
                return 1
        return 0
    if verb == "apply" and ("-f" in opts or "--filename" in opts):
        state.setdefault("applied", []).append(opts.get("-f") or opts.get("--filename"))
        print("manifest applied (simulated)")
        return 0
    print(f"fakek8s: unsupported kubectl command: {' '.join(words)}", file=sys.stderr)
    return 64


def _cordon(state: fakek8s.State, name: str, *, desired: bool) -> None:
    """kubectl's cordon/uncordon (drain cordons first): the same lines, and the kubelet's event."""
    node = state["nodes"][name]
    verb = "cordoned" if desired else "uncordoned"
    if node["unschedulable"] == desired:
        print(f"node/{name} already {verb}")
        return
    node["unschedulable"] = desired
    print(f"node/{name} {verb}")
    status = "NodeNotSchedulable" if desired else "NodeSchedulable"
    fakek8s.record_event(
        state,
        node=name,
        reason=status,
        message=f"Node {name} status is now: {status}",
        source="kubelet",
    )


def _print(output: str, items: list[tuple[str, dict[str, Any]]], *, single: bool) -> int:
    objects = [fakek8s.node_object(name, node) for name, node in items]
    if output.startswith("jsonpath="):
        # Simple field paths only, e.g. {.metadata.uid}; enough for the playbooks.
        path = output.removeprefix("jsonpath=").strip("'{}").lstrip(".").split(".")
        values = []
        for obj in objects:
            value: Any = obj
            for part in path:
                value = value.get(part, "") if isinstance(value, dict) else ""
            # As kubectl prints them: JSON's true/false, an absent field as nothing.
            values.append(json.dumps(value) if isinstance(value, bool) else str(value))
        print(" ".join(values), end="")
    elif output == "json":
        doc = objects[0] if single else {"apiVersion": "v1", "kind": "List", "items": objects}
        print(json.dumps(doc, indent=2))
    elif output == "name":
        for obj in objects:
            print(f"node/{obj['metadata']['name']}")
    else:
        print(f"{'NAME':<24}{'STATUS':<22}{'ROLES':<16}VERSION")
        for (name, node), obj in zip(items, objects, strict=True):
            status = "Ready,SchedulingDisabled" if node["unschedulable"] else "Ready"
            role = "control-plane" if node["control_plane"] else "<none>"
            print(f"{name:<24}{status:<22}{role:<16}{obj['status']['nodeInfo']['kubeletVersion']}")
    return 0


def _selected(event: dict[str, Any], selector: str) -> bool:
    for clause in filter(None, selector.split(",")):
        field, _, want = clause.partition("=")
        value: Any = event
        for part in field.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        if str(value) != want:
            return False
    return True


COMMANDS = {"kubectl": kubectl}
