"""The inventory as text: the columns `clusterctl nodes get` prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.nodes.schemas import NodeRead
from app.nodes.service import EXPECTED_IN_CLUSTER
from app.tables import cell, render_table

HEADERS = ("NAME", "ADDRESS", "USER", "GROUP", "STATE", "IN CLUSTER", "LAST SEEN", "LABELS")
# The node fields the table shows: a listing for it reads these alone.
FIELDS = (
    "name",
    "address",
    "ssh_port",
    "ssh_user",
    "host_group",
    "state",
    "in_cluster",
    "last_seen_at",
    "labels",
)


def _address(node: Mapping[str, Any]) -> str:
    # Brackets keep an IPv6 address apart from its port.
    address = node["address"]
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{node['ssh_port']}"


def _in_cluster(node: Mapping[str, Any]) -> str:
    # From the drift watch; "-" until a master has been asked. Absent is news (MISSING) only
    # for a node that should be there; a registered, decommissioned or updating one is "no".
    if node["in_cluster"] is None:
        return "-"
    if node["in_cluster"]:
        return "yes"
    return "MISSING" if node["state"] in EXPECTED_IN_CLUSTER else "no"


def nodes_text(nodes: Sequence[Mapping[str, Any]]) -> str:
    """The nodes as `read_nodes` gives them (NodeRead's fields, FIELDS at least), one row each."""
    rows = [
        (
            n["name"],
            _address(n),
            n["ssh_user"],
            n["host_group"].value,
            n["state"].value,
            _in_cluster(n),
            n["last_seen_at"],
            n["labels"],
        )
        for n in nodes
    ]
    return render_table(HEADERS, rows)


def node_text(node: NodeRead) -> str:
    """One node's row, then its vars (values already redacted below the admin role)."""
    text = nodes_text([dict(node)])
    if node.vars:
        text += f"vars: {cell(node.vars)}\n"
    return text
