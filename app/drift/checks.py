"""Drift checks as rows (`drift_check`): asked for on any replica, run by the leader, read by all.

A row's life: `requested` (POST /drift/check on some replica, waiting for the leader), `running`
(the leader took it, or started its interval's check), `done` (with what it found). One check at
a time across the replicas: asking while one is requested or running is CheckRunning (409) at
once. Taking that decision and inserting the row are one step for every replica: the transaction
holds an advisory lock on PostgreSQL, and SQLite's write transactions run one at a time.

The rows the leader writes (taking a check, its result) are fenced by the caller; an unfinished
row nobody will finish (its leader died, its asker gave up) is closed as failed, so it never
blocks the next check for good. The newest `KEEP` done rows are kept, older ones pruned.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.db import utcnow
from app.drift.models import DriftCheck
from app.errors import Conflict

REQUESTED, RUNNING, DONE = "requested", "running", "done"
ACTIVE = (REQUESTED, RUNNING)
KEEP = 100
# Any constant of ours, the same for every replica: the lock that orders "ask" and "start".
_ADVISORY_KEY = 0x636C7573_64726966  # "clusdrif"


@dataclass
class Check:
    """What a check found (GET /info/drift)."""

    at: dt.datetime
    outcome: str  # checked | skipped | failed
    message: str
    master: str | None = None
    missing: list[str] = field(default_factory=list)
    remediation_jobs: list[int] = field(default_factory=list)


class CheckRunning(Conflict):
    pass


def _one_at_a_time(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_KEY)))


def _active(session: Session) -> DriftCheck | None:
    return session.scalar(
        sa.select(DriftCheck).where(DriftCheck.status.in_(ACTIVE)).order_by(DriftCheck.id).limit(1)
    )


def _close(row: DriftCheck, message: str) -> None:
    row.status, row.outcome, row.message = DONE, "failed", message
    row.at = row.at or utcnow()


def request(*, session: Session, actor: str, stale_before: dt.datetime) -> int:
    """Ask for a check; CheckRunning if one is asked for or runs (since `stale_before`: an older
    one is abandoned and closed). Returns the new row's id."""
    _one_at_a_time(session)
    active = _active(session)
    if active is not None:
        since = active.at or active.requested_at
        if since >= stale_before:
            raise CheckRunning(
                "a drift check is already running"
                f" (since {since.isoformat(timespec='seconds')})"
                "; its result will be at GET /info/drift when it ends",
                running_since=since.isoformat(),
            )
        _close(active, "abandoned: it did not end in time (its leader stopped)")
    row = DriftCheck(status=REQUESTED, requested_by=actor, requested_at=utcnow())
    session.add(row)
    session.flush()
    return row.id


def take_next(*, session: Session, replica: str, interval_due: bool) -> int | None:
    """The leader's next check: the oldest one asked for, else (`interval_due`) its interval's
    own; marked running. None when there is nothing to do. The caller fences."""
    _one_at_a_time(session)
    row = session.scalar(
        sa.select(DriftCheck).where(DriftCheck.status == REQUESTED).order_by(DriftCheck.id).limit(1)
    )
    if row is None:
        if not interval_due or _active(session) is not None:
            return None
        row = DriftCheck(requested_by=None, requested_at=utcnow())
        session.add(row)
    row.status, row.at, row.replica = RUNNING, utcnow(), replica
    session.flush()
    return row.id


def finish(*, session: Session, check_id: int, check: Check) -> None:
    """Write a check's result (the caller fences) and prune the oldest done rows."""
    row = session.get(DriftCheck, check_id)
    if row is None:
        return  # pruned meanwhile: nobody waits for it any more
    row.status = DONE
    row.at, row.outcome, row.message = check.at, check.outcome, check.message
    row.master, row.missing, row.remediation_jobs = (
        check.master,
        list(check.missing),
        list(check.remediation_jobs),
    )
    _prune(session)


def _prune(session: Session) -> None:
    oldest_kept = session.scalar(
        sa.select(DriftCheck.id)
        .where(DriftCheck.status == DONE)
        .order_by(DriftCheck.id.desc())
        .offset(KEEP - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        session.execute(
            sa.delete(DriftCheck).where(DriftCheck.status == DONE, DriftCheck.id < oldest_kept)
        )


def close_running(*, session: Session, replica: str) -> int:
    """At the start of a lead: a check still running was the last leader's, which stopped
    (this replica runs none yet). Close it; the checks asked for wait for this leader."""
    rows = list(session.scalars(sa.select(DriftCheck).where(DriftCheck.status == RUNNING)))
    for row in rows:
        _close(row, f"interrupted: {row.replica or 'the leader'} stopped leading while running it")
    return len(rows)


def give_up(*, session: Session, check_id: int, message: str) -> bool:
    """Close a check its asker no longer waits for, unless the leader has taken it."""
    row = session.get(DriftCheck, check_id)
    if row is None or row.status != REQUESTED:
        return False
    _close(row, message)
    return True


def read(*, session: Session, check_id: int) -> tuple[str, Check | None] | None:
    """A check's status, and what it found once done; None if it is gone."""
    row = session.get(DriftCheck, check_id)
    if row is None:
        return None
    return row.status, _as_check(row) if row.status == DONE else None


def latest(*, session: Session) -> Check | None:
    """The last check that ended, whichever replica ran it."""
    row = session.scalar(
        sa.select(DriftCheck)
        .where(DriftCheck.status == DONE)
        .order_by(DriftCheck.at.desc(), DriftCheck.id.desc())
        .limit(1)
    )
    return None if row is None else _as_check(row)


def _as_check(row: DriftCheck) -> Check:
    return Check(
        at=row.at or row.requested_at,
        outcome=row.outcome or "failed",
        message=row.message or "",
        master=row.master,
        missing=list(row.missing),
        remediation_jobs=list(row.remediation_jobs),
    )
