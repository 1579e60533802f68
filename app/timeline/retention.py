"""Retention: purge old events in the background, a small batch per transaction.

Events are of two kinds (`timeline_event.audit`, see `vocabulary.is_audit`): the audit trail (who
was let in or refused, what they asked for) and the rest (what happened to the cluster). Each kind
has its own count cap, so no flood of one kind can erase the other: a script retrying with a viewer
token writes audit events and never pushes job history out; a busy cluster writes ordinary events
and never pushes out the record of who did what.

Rules, in order:
1. At most `timeline_max_events` ordinary events: the oldest beyond it go, whatever their age.
2. At most `timeline_max_audit_events` audit events: likewise, except that verbosity events go
   first, since a role below admin can write them without limit (`_trim_floodable_audit`). The
   disk is finite and a flood must not fill it (refusals are also rate-limited at the source, see
   `app.auth.deps`).
3. Beyond `timeline_keep_days`, at most `timeline_max_events_per_node` ordinary events per node
   name (Ironic keeps 300); newer ones are all kept, however many. Audit events about a node
   (verbosity changes) fall under rule 2 only.

Each batch is its own short write transaction, so a writer waits at most one batch (a few ms on
SQLite; on PostgreSQL deletes never block inserts). The highest id purged, of either kind, is
recorded in the same transaction, which is how the stream knows a cursor may have lost events
(see `stream`): every purged id is at most that mark, so a cursor at or above it lost nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database, utcnow
from app.timeline.models import TimelineEvent, TimelineRetention
from app.timeline.vocabulary import FLOODABLE_AUDIT_ACTION

log = logging.getLogger("clusterm.timeline")
Fence = Callable[[Session], None]
ev = TimelineEvent


@dataclass(frozen=True)
class Policy:
    keep_days: int
    max_events: int
    max_audit_events: int
    max_per_node: int
    batch: int

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            keep_days=settings.timeline_keep_days,
            max_events=settings.timeline_max_events,
            max_audit_events=settings.timeline_max_audit_events,
            max_per_node=settings.timeline_max_events_per_node,
            batch=settings.timeline_purge_batch,
        )


def _nth_newest_id(session: Session, n: int, *where: sa.ColumnElement[bool]) -> int | None:
    """The id of the (n+1)-th newest event matching `where`: everything up to it is surplus."""
    query = sa.select(ev.id).where(*where).order_by(ev.id.desc()).offset(n).limit(1)
    return session.scalar(query)


def _delete_through(
    db: Database,
    through_id: int,
    batch: int,
    *where: sa.ColumnElement[bool],
    should_stop: Callable[[], bool],
    fence: Fence,
) -> int:
    deleted = 0
    while not should_stop():
        with db.write() as session:
            fence(session)
            ids = list(
                session.scalars(
                    sa.select(ev.id).where(ev.id <= through_id, *where).order_by(ev.id).limit(batch)
                )
            )
            if not ids:
                return deleted
            session.execute(sa.delete(ev).where(ev.id.in_(ids)))
            session.execute(
                sa.update(TimelineRetention)
                .where(TimelineRetention.id == 1, TimelineRetention.purged_through_id < ids[-1])
                .values(purged_through_id=ids[-1], purged_at=utcnow())
            )
        deleted += len(ids)
        if len(ids) < batch:
            return deleted
    return deleted


def _trim_floodable_audit(
    db: Database,
    policy: Policy,
    audit: sa.ColumnElement[bool],
    *,
    should_stop: Callable[[], bool],
    fence: Fence,
) -> int:
    """Over the audit cap, verbosity events go first, oldest first.

    An operator may write verbosity events at will (every change and revert is one), while the
    rest of the audit trail is rate-limited (refusals), one at a time (jobs) or admin-only
    (tokens, globals): without this rule a loop of verbosity changes would push out the record
    of the operator's own refused requests. The rest of the trail goes only when it alone is
    over the cap."""
    with db.read() as session:
        excess = (
            session.scalar(sa.select(sa.func.count()).select_from(ev).where(audit)) or 0
        ) - policy.max_audit_events
        if excess <= 0:
            return 0
        floodable = sa.and_(audit, ev.action == FLOODABLE_AUDIT_ACTION)
        through = session.scalar(
            sa.select(ev.id).where(floodable).order_by(ev.id).offset(excess - 1).limit(1)
        )
        if through is None:  # fewer than `excess` of them: all go
            through = session.scalar(sa.select(sa.func.max(ev.id)).where(floodable))
    if through is None:
        return 0
    return _delete_through(
        db, through, policy.batch, floodable, should_stop=should_stop, fence=fence
    )


def purge(
    *,
    db: Database,
    policy: Policy,
    now: dt.datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    fence: Fence = lambda _session: None,
) -> int:
    """Apply the retention rules once; return how many events were deleted. `fence` runs first
    in every write transaction: the daemon's purger purges only while its replica leads."""
    cutoff = (now or utcnow()) - dt.timedelta(days=policy.keep_days)
    deleted = 0
    # `= false`, not `IS false`: PostgreSQL answers only the former from the (audit, id) index.
    ordinary, audit = ev.audit == sa.false(), ev.audit == sa.true()
    deleted += _trim_floodable_audit(db, policy, audit, should_stop=should_stop, fence=fence)
    for kind, cap in ((ordinary, policy.max_events), (audit, policy.max_audit_events)):
        with db.read() as session:
            surplus = _nth_newest_id(session, cap, kind)
        if surplus is not None:
            deleted += _delete_through(
                db, surplus, policy.batch, kind, should_stop=should_stop, fence=fence
            )

    # Per node, the (node_name, id) index must lead: `IS NOT true` filters the audit events out
    # without offering SQLite the (audit, id) index, which it would otherwise pick and then walk
    # every ordinary event of every node.
    ordinary_of_node = ev.audit.is_not(True)
    with db.read() as session:
        crowded = list(
            session.scalars(
                sa.select(ev.node_name)
                .where(ev.node_name.is_not(None), ordinary_of_node)
                .group_by(ev.node_name)
                .having(sa.func.count() > policy.max_per_node, sa.func.min(ev.occurred_at) < cutoff)
            )
        )
    for name in crowded:
        if should_stop():
            break
        with db.read() as session:
            surplus = _nth_newest_id(
                session, policy.max_per_node, ev.node_name == name, ordinary_of_node
            )
        if surplus is not None:
            deleted += _delete_through(
                db,
                surplus,
                policy.batch,
                ev.node_name == name,
                ordinary_of_node,
                ev.occurred_at < cutoff,
                should_stop=should_stop,
                fence=fence,
            )
    if deleted:
        log.info("timeline retention deleted %d events", deleted)
    return deleted


class Purger:
    """The daemon's retention thread: purge at start, then every interval, until `stop()`; a
    background component (see app.runtime), so `start` may follow `stop` again.

    A thread of its own rather than an asyncio task around `to_thread`: stopping must wait for a
    batch in progress, so that no query outlives the daemon's connection pool.
    """

    name = "timeline retention"

    def __init__(self, *, db: Database, settings: Settings, fence: Fence) -> None:
        self._db = db
        self._fence = fence
        self._policy = Policy.of(settings)
        self._interval = settings.timeline_purge_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        # A new event per run: the thread of a previous run may only be told to stop, never to
        # go on.
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="timeline-retention", daemon=True
        )
        self._thread.start()

    def refuse_work(self) -> None:
        self._stop.set()  # the batch in progress is the last

    async def stop(self) -> None:
        self.refuse_work()
        thread, self._thread = self._thread, None
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                purge(db=self._db, policy=self._policy, should_stop=stop.is_set, fence=self._fence)
            except Exception:
                # A failed pass (the database briefly unreachable) is retried at the next one.
                log.exception("timeline retention failed; retrying in %.0f s", self._interval)
            stop.wait(self._interval)
