"""The Kubernetes RBAC a clusterm identity needs to change components' verbosity, built from
what the daemon reports (`GET /verbosity/components`).

- kube-apiserver, and the scheduler and controller-manager that delegate to it: verb `put` on
  the non-resource URL each serves the flags endpoint at (`/debug/flags/v`).
- The kubelet, direct or relayed by the apiserver: a PUT is verb `update` on `nodes/proxy`. No
  `get`: clusterm never reads the kubelet's endpoint (a GET is refused by Kubernetes anyway).
- kube-proxy checks nothing, so it needs no rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NAME = "clusterm-verbosity"
RBAC_GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{RBAC_GROUP}/v1"


def rules(components: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    urls = sorted({c["path"] for c in components if c["authorization"] == "non-resource-url"})
    out: list[dict[str, Any]] = []
    if urls:
        out.append({"nonResourceURLs": urls, "verbs": ["put"]})
    if any(c["authorization"] == "nodes/proxy" for c in components):
        out.append({"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["update"]})
    return out


def _comments(components: Sequence[dict[str, Any]], user: str) -> str:
    lines = [f"# What the Kubernetes identity {user!r} needs so that clusterm can set log"]
    lines.append("# verbosity (PUT /debug/flags/v) on the components it is configured for:")
    for c in components:
        if c["authorization"] == "non-resource-url":
            why = f"put on the non-resource URL {c['path']}"
        elif c["authorization"] == "nodes/proxy":
            how = "through the apiserver" if c["via_apiserver"] else "directly"
            why = f"update on nodes/proxy (reached {how})"
        else:
            why = "no rule: it checks no one's rights"
        lines.append(f"#   {c['name']}: {why}")
    lines.append("# Apply with: kubectl apply -f -")
    return "\n".join(lines) + "\n"


def manifests(components: Sequence[dict[str, Any]], user: str) -> str:
    """A ClusterRole and the ClusterRoleBinding of `user` to it, as one YAML stream."""
    import yaml  # here, not at the top: every other command starts without it

    role = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRole",
        "metadata": {"name": NAME},
        "rules": rules(components),
    }
    binding = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": NAME},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": NAME},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user}],
    }
    stream = yaml.safe_dump_all([role, binding], sort_keys=False, default_flow_style=False)
    return _comments(components, user) + "---\n" + stream
