"""The ended jobs' totals kept between scrapes (app.jobs.stats): always the values a scrape that
reads the whole job table reports, and a scrape after the first reads only the jobs above the
watermark, so its cost does not grow with the table."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from prometheus_client import generate_latest
from sqlalchemy import event

from app.db import Database
from app.jobs import ending, stats
from app.jobs.models import Job
from app.jobs.stats import DURATION_BUCKETS, EndedJobs, JobTotals
from app.jobs.vocabulary import ACTIVE_STATUSES, Kind, Status
from app.metrics.collector import ClusterCollector

START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def add_job(db: Database, kind: Kind, status: Status, took_s: float | None = None) -> int:
    """A job row as the service leaves it; `took_s` None: it never started. An active job is
    marked as claimed by another leader, so this app's runner leaves it alone."""
    ended = status not in ACTIVE_STATUSES
    times: dict[str, Any] = {}
    if took_s is not None:
        times["started_at"] = START
        if ended:
            times["finished_at"] = START + dt.timedelta(seconds=took_s)
    elif ended:
        times["finished_at"] = START
    with db.write() as session:
        job = Job(
            kind=kind,
            desc="test",
            nodes=[],
            actor="test",
            status=status,
            hosts={},
            leader=None if ended else "elsewhere",
            **times,
        )
        session.add(job)
        session.flush()
        return job.id


def expected(db: Database) -> JobTotals:
    """The totals, worked out in Python from every row."""
    counts: dict[tuple[Kind, Status], int] = {}
    per_bucket: dict[Kind, list[int]] = {}
    sums: dict[Kind, int] = {}
    with db.read() as session:
        rows = session.scalars(sa.select(Job).where(Job.status.not_in(sorted(ACTIVE_STATUSES))))
        for job in rows:
            counts[job.kind, job.status] = counts.get((job.kind, job.status), 0) + 1
            if job.started_at is None or job.finished_at is None:
                continue
            ms = round((job.finished_at - job.started_at).total_seconds() * 1000)
            index = next(
                (i for i, bound in enumerate(DURATION_BUCKETS) if ms <= bound * 1000),
                len(DURATION_BUCKETS),
            )
            per_bucket.setdefault(job.kind, [0] * (len(DURATION_BUCKETS) + 1))[index] += 1
            sums[job.kind] = sums.get(job.kind, 0) + ms
    durations = {kind: stats.Durations(tuple(n), sums[kind]) for kind, n in per_bucket.items()}
    return JobTotals(counts, durations)


def exposition(db: Database, ended_jobs: EndedJobs) -> str:
    return generate_latest(ClusterCollector(lambda: db, ended_jobs)).decode()


def test_totals_kept_between_scrapes_are_those_read_afresh(db: Database) -> None:
    kept = EndedJobs()

    def check() -> None:
        with db.read() as session:
            got = kept.read(session=session)
            afresh = stats.total_ended_jobs(session=session)
        assert got == afresh == expected(db)
        # What a scraper sees: the same text as from a replica that has just started.
        assert exposition(db, kept) == exposition(db, EndedJobs())

    check()  # no job yet
    add_job(db, Kind.COMMISSION, Status.SUCCESSFUL, 5.5)
    add_job(db, Kind.UPDATE, Status.FAILED, 45.25)
    check()
    third = add_job(db, Kind.UPDATE, Status.RUNNING, 1.0)  # runs on while later jobs end
    add_job(db, Kind.COMMISSION, Status.CANCELED)  # canceled while queued: never ran
    fifth = add_job(db, Kind.DECOMMISSION, Status.RUNNING, 1.0)
    add_job(db, Kind.DISCOVER, Status.SUCCESSFUL, 12.0)
    check()
    # Recovery ends the fifth (its leader is gone) while the third still runs.
    with db.write() as session:
        ended = ending.interrupt_abandoned(session=session, exclude=third)
        assert [job.id for job in ended] == [fifth]
        session.execute(
            sa.update(Job)
            .where(Job.id == fifth)
            .values(finished_at=START + dt.timedelta(seconds=700.0))
        )
    check()
    check()  # a scrape with nothing new adds nothing twice
    with db.write() as session:
        ending.finish_job(
            session=session, job_id=third, status=Status.TIMEOUT, rc=None, hosts={}, error="x"
        )
        session.execute(
            sa.update(Job)
            .where(Job.id == third)
            .values(finished_at=START + dt.timedelta(seconds=4000.0))
        )
    check()
    add_job(db, Kind.CLEANUP, Status.SUCCESSFUL, 0.25)
    add_job(db, Kind.COMMISSION, Status.QUEUED)
    check()
    totals = expected(db)
    assert sum(totals.counts.values()) == 7
    assert totals.counts[Kind.DECOMMISSION, Status.INTERRUPTED] == 1
    assert totals.durations[Kind.UPDATE].at_most[DURATION_BUCKETS.index(7200.0)] == 2


@contextmanager
def statements(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements sent to the database in the block, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_a_later_scrape_reads_only_the_jobs_above_the_watermark(db: Database) -> None:
    for i in range(40):
        add_job(db, list(Kind)[i % len(Kind)], Status.SUCCESSFUL, float(i))
    kept = EndedJobs()
    with db.read() as session:
        kept.read(session=session)  # the first scrape reads the table once
    add_job(db, Kind.UPDATE, Status.RUNNING, 1.0)
    add_job(db, Kind.UPDATE, Status.FAILED, 3.0)
    with statements(db) as seen, db.read() as session:
        kept.read(session=session)
    with statements(db) as seen_next, db.read() as session:
        kept.read(session=session)

    for run in (seen, seen_next):
        on_job = [(sql, params) for sql, params in run if re.search(r"\bFROM job\b", sql)]
        assert on_job, run
        for sql, params in on_job:
            # Every read of the job table either has a lower bound on its id, the watermark
            # (40: every job up to the 41st, still running, has ended), or finds the watermark
            # itself: the active jobs through the status index, the largest id.
            bounds = re.findall(r"job\.id > (\?|%\(\w+\)s)", sql)
            if bounds:
                assert [_bound(sql, params, bound) for bound in bounds] == [40], sql
            else:
                assert "job.status IN (" in sql, sql
                assert "max(job.id)" in sql, sql
            if db.engine.dialect.name == "sqlite":
                # On SQLite the plan shows it too: a search by key or index, never a scan.
                with db.read() as session:
                    plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
                    details = [row[-1] for row in plan]
                assert not [d for d in details if re.search(r"\bSCAN job\b", d)], details
                if bounds:
                    assert any("INTEGER PRIMARY KEY (rowid>?" in d for d in details), details


def _bound(sql: str, params: Any, placeholder: str) -> Any:
    """The value bound to `placeholder` (`?` on SQLite, `%(name)s` on PostgreSQL)."""
    if isinstance(params, dict):
        name = re.fullmatch(r"%\((\w+)\)s", placeholder)
        assert name is not None, placeholder
        return params[name.group(1)]
    assert placeholder == "?", placeholder
    return params[sql[: sql.index("job.id > ?")].count("?")]
