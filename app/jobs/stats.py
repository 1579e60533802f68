"""The jobs' totals for GET /metrics, at a cost that stays flat as the job table grows.

An ended job never changes again, and no job row is ever deleted:
- its end is written once, by `ending.finish_job` (the leader that ran it, in a fenced
  transaction) or by `ending.interrupt_abandoned` (a new leader, for jobs still running or
  claimed); neither touches a job whose status is already final;
- `kind` is set when the job is accepted, `started_at` when it is claimed, `finished_at` with its
  final status; nothing writes them afterwards;
- retention (app.jobs.results, app.jobs.logstore) deletes a job's task results and log chunks,
  never the `job` row.

So the ended jobs up to a watermark W (the smallest id of a job still queued or running, less
one; the largest id when none is) add up to totals that never change. `EndedJobs` keeps those
totals in memory, for one app; each scrape then reads only the jobs above W (a range of the
primary key: the active job and those that ended since the last scrape) and adds them in. The
first scrape after a start reads the whole table once: the values still come from the database,
the same on every replica, and a restart resets nothing.

A job id at or below W cannot appear later: a new job takes the one active slot
(`models.Job.active_slot`) in its insert, so a transaction holding a smaller id from the
sequence fails on the slot once a later job is committed, and ids only grow.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.jobs.models import Job
from app.jobs.vocabulary import ACTIVE_STATUSES, Kind, Status

# Upper bounds, in seconds, of clusterm_job_duration_seconds: from a quick discover to the
# longest job_timeout_s anyone sets in practice.
DURATION_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
_BOUNDS_MS = tuple(round(bound * 1000) for bound in DURATION_BUCKETS)


@dataclass(frozen=True)
class Durations:
    """The ended jobs of one kind that ran: how many in each of DURATION_BUCKETS (the first
    bucket each falls in, the last entry: above them all) and their total in milliseconds.

    Whole milliseconds, so that totals added up scrape after scrape are exactly the total read
    at once: float seconds would drift in their last digits with the order of the additions."""

    per_bucket: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    sum_ms: int = 0

    @property
    def count(self) -> int:
        return sum(self.per_bucket)

    @property
    def sum_s(self) -> float:
        return self.sum_ms / 1000

    @property
    def at_most(self) -> tuple[int, ...]:
        """How many took at most each of DURATION_BUCKETS (cumulative, as Prometheus' buckets)."""
        return tuple(itertools.accumulate(self.per_bucket[:-1]))

    def __add__(self, other: Durations) -> Durations:
        per_bucket = tuple(a + b for a, b in zip(self.per_bucket, other.per_bucket, strict=True))
        return Durations(per_bucket, self.sum_ms + other.sum_ms)


@dataclass(frozen=True)
class JobTotals:
    """Ended jobs: how many by kind and final status, and how long those that ran took."""

    counts: Mapping[tuple[Kind, Status], int] = field(default_factory=dict)
    durations: Mapping[Kind, Durations] = field(default_factory=dict)

    def __add__(self, other: JobTotals) -> JobTotals:
        counts = dict(self.counts)
        for key, n in other.counts.items():
            counts[key] = counts.get(key, 0) + n
        durations = dict(self.durations)
        for kind, took in other.durations.items():
            durations[kind] = durations.get(kind, Durations()) + took
        return JobTotals(counts, durations)


def settled_through(*, session: Session) -> int:
    """The watermark W: every job with an id up to it has ended (0 when there is no job).

    Reads the active jobs through the status index and the largest id through the primary key:
    a row or two, whatever the table holds."""
    first_active = (
        sa.select(sa.func.min(Job.id))
        .where(Job.status.in_(sorted(ACTIVE_STATUSES)))
        .scalar_subquery()
    )
    last = sa.select(sa.func.max(Job.id)).scalar_subquery()
    first, largest = session.execute(sa.select(first_active, last)).one()
    if first is not None:
        return int(first) - 1
    return int(largest or 0)


def total_ended_jobs(*, session: Session, above: int = 0, through: int | None = None) -> JobTotals:
    """The ended jobs with an id in (above, through] (no upper bound when `through` is None),
    grouped in SQL: a few rows, whatever the number of jobs. A job that ended before it started
    (canceled while queued) is counted, with no duration.

    Each duration is computed once, in a materialized CTE: written into every bucket's test, the
    date arithmetic (SQLite parses both timestamps from text) cost five times as much."""
    if session.get_bind().dialect.name == "sqlite":
        seconds = (sa.func.julianday(Job.finished_at) - sa.func.julianday(Job.started_at)) * 86400.0
    else:
        seconds = sa.func.extract("epoch", Job.finished_at - Job.started_at)
    # NULL when either end is missing (a job canceled while queued never started). Never below
    # zero: a job interrupted by a new leader ends on that replica's clock, which may run behind
    # the dead leader's that started it, and a histogram's sum must not go down.
    seconds = sa.case((seconds < 0, 0.0), else_=seconds)
    took_ms = sa.cast(sa.func.round(seconds * 1000), sa.BigInteger)
    in_range = [Job.id > above] if through is None else [Job.id > above, Job.id <= through]
    ended = (
        sa.select(Job.kind.label("kind"), Job.status.label("status"), took_ms.label("took_ms"))
        .where(*in_range, Job.status.not_in(sorted(ACTIVE_STATUSES)))
        .cte("ended")
    )
    if session.get_bind().dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
        ended = ended.prefix_with("MATERIALIZED")  # SQLite 3.35 and PostgreSQL 12 know it
    # The first bucket each job falls in; len(DURATION_BUCKETS): above them all; -1: never ran.
    bucket = sa.case(
        (ended.c.took_ms.is_(None), -1),
        *[(ended.c.took_ms <= bound, i) for i, bound in enumerate(_BOUNDS_MS)],
        else_=len(DURATION_BUCKETS),
    )
    query = sa.select(
        ended.c.kind, ended.c.status, bucket, sa.func.count(), sa.func.sum(ended.c.took_ms)
    ).group_by(ended.c.kind, ended.c.status, bucket)
    counts: dict[tuple[Kind, Status], int] = {}
    per_bucket: dict[Kind, list[int]] = {}
    sums: dict[Kind, int] = {}
    for kind, status, index, count, total in session.execute(query):
        counts[kind, status] = counts.get((kind, status), 0) + count
        if index >= 0:
            per_bucket.setdefault(kind, [0] * (len(DURATION_BUCKETS) + 1))[index] += count
            sums[kind] = sums.get(kind, 0) + int(total or 0)
    durations = {kind: Durations(tuple(n), sums[kind]) for kind, n in per_bucket.items()}
    return JobTotals(counts, durations)


class EndedJobs:
    """The totals of the ended jobs, kept in memory by one app (its runtime) between scrapes.

    Scrapes run in threads of their own, several at once: each reads what is kept under the
    lock, queries without it, and keeps what it learnt only when that reaches further."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._through = 0
        self._settled = JobTotals()

    def read(self, *, session: Session) -> JobTotals:
        """The totals of every ended job, as the database holds them now."""
        with self._lock:
            through, settled = self._through, self._settled
        now = settled_through(session=session)
        # Rows are never deleted: a smaller watermark means another database than the one the
        # totals came from (one restored from a backup, say). Read it all again.
        another = now < through
        if another:
            through, settled = 0, JobTotals()
        if now > through:
            settled += total_ended_jobs(session=session, above=through, through=now)
        if now != through or another:
            with self._lock:
                if now > self._through or another:
                    self._through, self._settled = now, settled
        return settled + total_ended_jobs(session=session, above=now)
