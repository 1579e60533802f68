"""Compare the cluster's Node list with the inventory, and record what changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from app.db import utcnow
from app.drift import checks
from app.nodes import service as nodes
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity

ACTOR = "drift-watch"
# The nodes clusterm put in the cluster and expects to find there.
EXPECTED_STATES = nodes.EXPECTED_IN_CLUSTER


@dataclass
class Drift:
    """The outcome of one comparison."""

    missing: list[str] = field(default_factory=list)  # expected, absent (newly or still)
    newly_missing: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)


def apply_node_list(
    *, session: Session, present: Mapping[str, str], now: dt.datetime | None = None
) -> Drift:
    """Mark every node as in the cluster or not, given the cluster's Nodes (name -> UID).

    Only nodes clusterm commissioned produce events: a registered node that is absent is expected
    to be, and one in a job is the job's business (the watch does not run during jobs).
    """
    now = now or utcnow()
    drift = Drift()
    for node in nodes.list_nodes(session=session):
        seen = node.name in present
        expected = node.state in EXPECTED_STATES
        if seen:
            if node.in_cluster is False and expected:
                gone_for = (
                    (now - node.missing_since).total_seconds() if node.missing_since else None
                )
                timeline.record_event(
                    session=session,
                    action="drift",
                    reason="NodeReturned",
                    result=Result.SUCCEEDED,
                    node=node,
                    actor=ACTOR,
                    note=f"node {node.name} is back in the cluster"
                    + (f" after {gone_for:.0f} s missing" if gone_for is not None else ""),
                    details={"uid": present[node.name]},
                )
                drift.returned.append(node.name)
            nodes.mark_seen(node=node, now=now)
            continue
        newly_missing = expected and node.in_cluster is not False
        if expected:
            drift.missing.append(node.name)
            if newly_missing:
                last = node.last_seen_at.isoformat() if node.last_seen_at else "never"
                timeline.record_event(
                    session=session,
                    action="drift",
                    reason="NodeMissing",
                    result=Result.FAILED,
                    severity=Severity.WARNING,
                    node=node,
                    actor=ACTOR,
                    note=f"node {node.name} is {node.state} in clusterm but not in the cluster's "
                    f"Node list (last seen there: {last})",
                    details={"last_seen_at": last},
                )
                drift.newly_missing.append(node.name)
        nodes.mark_missing(node=node, since=now if newly_missing else None)
    return drift


def count_missing(*, session: Session) -> int:
    """The nodes clusterm expects in the cluster that its last check did not find there."""
    return nodes.count_missing(session=session, states=EXPECTED_STATES)


def last_check_at(*, session: Session) -> dt.datetime | None:
    """When the last drift check ended, whichever replica ran it; None before the first."""
    found = checks.latest(session=session)
    return None if found is None else found.at
