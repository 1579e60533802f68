"""The inventory as text: the columns `clusterctl nodes get` prints."""

from __future__ import annotations

from collections.abc import Sequence

from app.nodes.schemas import NodeRead
from app.nodes.service import IN_CLUSTER
from app.tables import cell, render_table

HEADERS = ("NAME", "ADDRESS", "USER", "GROUP", "STATE", "IN CLUSTER", "LAST SEEN", "LABELS")


def _address(node: NodeRead) -> str:
    # Brackets keep an IPv6 address apart from its port.
    host = f"[{node.address}]" if ":" in node.address else node.address
    return f"{host}:{node.ssh_port}"


def _in_cluster(node: NodeRead) -> str:
    # From the drift watch; "-" until a master has been asked. Absent is news (MISSING) only
    # for a node that should be there; a registered or decommissioned one is just "no".
    if node.in_cluster is None:
        return "-"
    if node.in_cluster:
        return "yes"
    return "MISSING" if node.state in IN_CLUSTER else "no"


def nodes_text(nodes: Sequence[NodeRead]) -> str:
    rows = [
        (
            n.name,
            _address(n),
            n.ssh_user,
            n.host_group.value,
            n.state.value,
            _in_cluster(n),
            n.last_seen_at,
            n.labels,
        )
        for n in nodes
    ]
    return render_table(HEADERS, rows)


def node_text(node: NodeRead) -> str:
    """One node's row, then its vars (values already redacted below the admin role)."""
    text = nodes_text([node])
    if node.vars:
        text += f"vars: {cell(node.vars)}\n"
    return text
