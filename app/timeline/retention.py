"""Retention: purge old events in the background, a small batch per transaction.

Rules, in order:
1. At most `timeline_max_events` events in all: the oldest beyond it go, whatever their age. The
   disk is finite and a flood (a script retrying with a viewer token, each 403 an audit event)
   must not fill it.
2. Beyond `timeline_keep_days`, at most `timeline_max_events_per_node` events per node name
   (Ironic keeps 300); newer ones are all kept, however many.

Each batch is its own short write transaction, so a writer waits at most one batch (a few ms on
SQLite; on PostgreSQL deletes never block inserts). The highest id purged is recorded in the same
transaction, which is how the stream knows a cursor has lost events (see `stream`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database, utcnow
from app.timeline.models import TimelineEvent, TimelineRetention

log = logging.getLogger("clusterm.timeline")
ev = TimelineEvent


@dataclass(frozen=True)
class Policy:
    keep_days: int
    max_events: int
    max_per_node: int
    batch: int

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            keep_days=settings.timeline_keep_days,
            max_events=settings.timeline_max_events,
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
) -> int:
    deleted = 0
    while not should_stop():
        with db.write() as session:
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


def purge(
    *,
    db: Database,
    policy: Policy,
    now: dt.datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Apply the retention rules once; return how many events were deleted."""
    cutoff = (now or utcnow()) - dt.timedelta(days=policy.keep_days)
    deleted = 0
    with db.read() as session:
        surplus = _nth_newest_id(session, policy.max_events)
    if surplus is not None:
        deleted += _delete_through(db, surplus, policy.batch, should_stop=should_stop)

    with db.read() as session:
        crowded = list(
            session.scalars(
                sa.select(ev.node_name)
                .where(ev.node_name.is_not(None))
                .group_by(ev.node_name)
                .having(sa.func.count() > policy.max_per_node, sa.func.min(ev.occurred_at) < cutoff)
            )
        )
    for name in crowded:
        if should_stop():
            break
        with db.read() as session:
            surplus = _nth_newest_id(session, policy.max_per_node, ev.node_name == name)
        if surplus is not None:
            deleted += _delete_through(
                db,
                surplus,
                policy.batch,
                ev.node_name == name,
                ev.occurred_at < cutoff,
                should_stop=should_stop,
            )
    if deleted:
        log.info("timeline retention deleted %d events", deleted)
    return deleted


class Purger:
    """The daemon's retention thread: purge at start, then every interval, until `stop()`.

    A thread of its own rather than an asyncio task around `to_thread`: stopping must wait for a
    batch in progress, so that no query outlives the daemon's connection pool.
    """

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self._db = db
        self._policy = Policy.of(settings)
        self._interval = settings.timeline_purge_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                purge(db=self._db, policy=self._policy, should_stop=self._stop.is_set)
            except Exception:
                # A failed pass (the database briefly unreachable) is retried at the next one.
                log.exception("timeline retention failed; retrying in %.0f s", self._interval)
            self._stop.wait(self._interval)
