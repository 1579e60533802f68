"""Compare the cluster's Node list with the inventory, and record what changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.db import utcnow
from app.nodes.lifecycle import State
from app.nodes.models import Node
from app.timeline import service as timeline

ACTOR = "drift-watch"
# The nodes clusterm put in the cluster and expects to find there.
EXPECTED_STATES = (State.COMMISSIONED.value, State.MAINTENANCE.value)


@dataclass
class Drift:
    """The outcome of one comparison."""

    missing: list[str] = field(default_factory=list)  # expected, absent (newly or still)
    newly_missing: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)


def commissioned_master(*, session: Session) -> Node | None:
    """The master to ask: a commissioned one, oldest first (the one that ran `kubeadm init`)."""
    return session.scalar(
        sa.select(Node)
        .where(Node.host_group == "master", Node.state == State.COMMISSIONED.value)
        .order_by(Node.created_at, Node.id)
        .limit(1)
    )


def apply_node_list(
    *, session: Session, present: Mapping[str, str], now: dt.datetime | None = None
) -> Drift:
    """Mark every node as in the cluster or not, given the cluster's Nodes (name -> UID).

    Only nodes clusterm commissioned produce events: a registered node that is absent is expected
    to be, and one in a job is the job's business (the watch does not run during jobs).
    """
    now = now or utcnow()
    drift = Drift()
    for node in session.scalars(sa.select(Node).order_by(Node.name)):
        seen = node.name in present
        expected = node.state in EXPECTED_STATES
        if seen:
            node.last_seen_at = now
            if node.in_cluster is False and expected:
                gone_for = (
                    (now - node.missing_since).total_seconds() if node.missing_since else None
                )
                timeline.record_event(
                    session=session,
                    action="drift",
                    reason="NodeReturned",
                    result="succeeded",
                    node=node,
                    actor=ACTOR,
                    note=f"node {node.name} is back in the cluster"
                    + (f" after {gone_for:.0f} s missing" if gone_for is not None else ""),
                    details={"uid": present[node.name]},
                )
                drift.returned.append(node.name)
            node.in_cluster, node.missing_since = True, None
            continue
        if expected:
            drift.missing.append(node.name)
            if node.in_cluster is not False:
                last = node.last_seen_at.isoformat() if node.last_seen_at else "never"
                timeline.record_event(
                    session=session,
                    action="drift",
                    reason="NodeMissing",
                    result="failed",
                    severity="warning",
                    node=node,
                    actor=ACTOR,
                    note=f"node {node.name} is {node.state} in clusterm but not in the cluster's "
                    f"Node list (last seen there: {last})",
                    details={"last_seen_at": last},
                )
                drift.newly_missing.append(node.name)
                node.missing_since = now
        node.in_cluster = False
    return drift
