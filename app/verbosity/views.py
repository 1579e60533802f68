"""Verbosity as text: the columns `clusterctl verbosity get` prints, and the components."""

from __future__ import annotations

from collections.abc import Sequence

from app.tables import render_table
from app.verbosity.schemas import Authorization, ComponentRead, LevelRead

LEVEL_HEADERS = (
    "NODE",
    "COMPONENT",
    "LEVEL",
    "BASELINE",
    "SET BY",
    "SET AT",
    "REVERTS TO",
    "REVERTS AT",
    "LAST ERROR",
)
COMPONENT_HEADERS = (
    "COMPONENT",
    "URL",
    "GROUPS",
    "BASELINE",
    "CREDENTIALS OF",
    "TOKEN",
    "CLIENT CERT",
    "CA",
    "SKIP TLS VERIFY",
    "NEEDS",
)


def levels_text(levels: Sequence[LevelRead]) -> str:
    """Every known level; a pending revert shows where and when it goes back."""
    rows = [
        (
            r.node,
            r.component,
            r.level,
            r.baseline_level,
            r.set_by,
            r.set_at,
            r.revert_to if r.reverts_at else None,
            r.reverts_at,
            r.last_error,
        )
        for r in levels
    ]
    return render_table(LEVEL_HEADERS, rows)


def _needs(c: ComponentRead) -> str:
    if c.authorization is Authorization.NON_RESOURCE_URL:
        return f"put {c.path}"
    if c.authorization is Authorization.NODES_PROXY:
        return "update nodes/proxy"
    return "-"


def components_text(components: Sequence[ComponentRead]) -> str:
    rows = [
        (
            c.name,
            c.url,
            [g.value for g in c.host_groups],
            c.baseline_level,
            c.credentials_from,
            c.token,
            c.client_cert,
            c.ca,
            c.insecure_skip_tls_verify,
            _needs(c),
        )
        for c in components
    ]
    return render_table(COMPONENT_HEADERS, rows)
