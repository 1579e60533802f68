"""Jobs in the database, as replicas share it: the stored log read back line for line, fenced
writes, one active job whatever the races, and a new leader's recovery. On SQLite and PostgreSQL;
the lead is the real SoleLeader, taken and let go by the test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.ansible.logbuffer import LogBuffer, LogSlice
from app.cluster.leadership import LeadLost, SoleLeader
from app.cluster.signals import Signals
from app.db import Database, upgrade
from app.errors import JobActive
from app.jobs import ending, logstore
from app.jobs import service as jobs
from app.jobs.logstore import LogCache, LogWriter, StoredJob, snapshot
from app.jobs.models import Job, JobLog, JobLogChunk
from app.jobs.runner import JobRunner
from app.jobs.vocabulary import Kind, Status
from app.nodes import service as nodes
from app.nodes.schemas import NodeCreate
from app.nodes.vocabulary import HostGroup
from app.timeline import service as timeline
from tests.jobs.conftest import job_settings


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    upgrade(db_url)
    database = timeline.attach(Database(db_url))
    yield database
    database.dispose()


@pytest.fixture
def leader() -> SoleLeader:
    lead = SoleLeader("replica-a:9007")
    lead.take()
    return lead


def accept(db: Database, kind: Kind = Kind.DISCOVER, names: list[str] | None = None) -> Job:
    with db.write() as session:
        return jobs.accept_job(
            session=session,
            kind=kind,
            names=names or ["10.0.0.1"],
            host_group=None,
            actor="test",
            inputs={"extra_vars": {}, "addresses": []},
        )


def claim(db: Database, leader: SoleLeader, as_replica: str | None = None) -> Job:
    with db.write() as session:
        leader.fence(session)
        claimed = jobs.claim_next_job(
            session=session, leader=as_replica or leader.replica_id, epoch=leader.epoch
        )
        assert claimed is not None
        logstore.create_log(session=session, job_id=claimed[0].id)
        return claimed[0]


def served(db: Database, cache: LogCache, job_id: int) -> StoredJob:
    """The job as a replica serves it (the routes' own path)."""
    with db.read() as session:
        snapshot(session)
        return cache.get(session=session, row=jobs.get_job(session=session, job_id=job_id))


def same(a: LogSlice, b: LogSlice) -> None:
    assert (a.lines, a.first_line, a.next_line, a.gap) == (
        b.lines,
        b.first_line,
        b.next_line,
        b.gap,
    )
    assert (a.dropped_lines, a.dropped_bytes) == (b.dropped_lines, b.dropped_bytes)
    assert a.complete == b.complete


def stored_state(db: Database, job_id: int) -> tuple[object, ...]:
    with db.read() as session:
        state = session.get(JobLog, job_id)
        assert state is not None
        chunks = session.scalars(
            sa.select(JobLogChunk.text).where(JobLogChunk.job_id == job_id)
        ).all()
        row = jobs.get_job(session=session, job_id=job_id)
        return (state.next_line, state.complete, tuple(chunks), row.status, row.finished_at)


def test_a_log_read_through_the_database_matches_the_buffer(
    db: Database, leader: SoleLeader
) -> None:
    cap = 64 * 1024
    accept(db)
    job = claim(db, leader)
    buf = LogBuffer(cap_bytes=cap)
    writer = LogWriter(db=db, leadership=leader, job_id=job.id, buffer=buf)
    follower, late = LogCache(cap_bytes=cap), LogCache(cap_bytes=cap)
    n = 0
    for batch in range(240):
        # Bursts now and then that the tail drops before they are stored: gaps between chunks.
        size = 400 if batch % 11 == 0 else 25
        lines = [
            f"{k:06d} caf\u00e9 \x1b[32mok\x1b[0m" if k % 4 else "" for k in range(n, n + size)
        ]
        if batch % 13 == 0:
            lines.append("z" * 10_000)  # cut at a sixteenth of the cap
        buf.append_lines(lines)
        n += len(lines)
        if batch % 3 == 0:
            writer.flush(lambda session: None)
            # A replica that follows the job: its copy brought up to date batch after batch.
            same(served(db, follower, job.id).log.read(), buf.read())
    buf.close(["", "[the end]"])
    writer.flush(
        lambda session: ending.finish_job(
            session=session, job_id=job.id, status=Status.SUCCESSFUL, rc=0, hosts={}, error=None
        )
    )
    whole = buf.read()
    assert whole.gap is not None
    assert whole.dropped_bytes > 4 * cap
    assert any(line.endswith(f"[clusterm: line cut at {cap // 16} chars]") for line in whole.lines)
    for cache in (follower, late):  # and one that reads it for the first time at the end
        job_served = served(db, cache, job.id)
        assert job_served.final
        assert job_served.row.status == Status.SUCCESSFUL
        same(job_served.log.read(), whole)
        for since in (0, 17, whole.next_line - 500, whole.next_line - 2):
            same(job_served.log.read(since=since, limit=300), buf.read(since=since, limit=300))
        same(job_served.log.read(tail=40), buf.read(tail=40))
    # The database keeps the head and the tail, not what the tail dropped.
    texts = stored_state(db, job.id)[2]
    assert isinstance(texts, tuple)
    assert sum(len(t) + 1 for t in texts) < 2 * cap


def test_a_finished_job_is_served_without_the_database(db: Database, leader: SoleLeader) -> None:
    accept(db)
    job = claim(db, leader)
    buf = LogBuffer(cap_bytes=1 << 20)
    buf.append_lines(["one", "two"])
    buf.close(["done"])
    LogWriter(db=db, leadership=leader, job_id=job.id, buffer=buf).flush(
        lambda session: ending.finish_job(
            session=session, job_id=job.id, status=Status.FAILED, rc=2, hosts={}, error="x"
        )
    )
    cache = LogCache(cap_bytes=1 << 20)
    first = served(db, cache, job.id)
    assert first.log.read().lines == ["one", "two", "done"]
    with db.write() as session:  # were the cache to look again, it would find nothing
        session.execute(sa.delete(JobLogChunk).where(JobLogChunk.job_id == job.id))
    assert served(db, cache, job.id).log.read().lines == ["one", "two", "done"]


def test_followers_of_a_running_job_share_one_look_at_the_database(
    db: Database, leader: SoleLeader
) -> None:
    accept(db)
    job = claim(db, leader)
    cache = LogCache(cap_bytes=1 << 20)
    assert cache.peek(job.id, max_age_s=60) is None  # never looked at: a follower must look
    looked = served(db, cache, job.id)
    assert cache.peek(job.id, max_age_s=60) is looked  # just brought up to date: shared
    assert cache.peek(job.id, max_age_s=0) is None  # too old for this follower: it looks again


def test_a_fenced_write_after_the_lead_is_lost_raises_and_changes_nothing(
    db: Database, leader: SoleLeader
) -> None:
    accept(db)
    job = claim(db, leader)
    buf = LogBuffer(cap_bytes=1 << 20)
    writer = LogWriter(db=db, leadership=leader, job_id=job.id, buffer=buf)
    buf.append_lines([f"line {k}" for k in range(10)])
    writer.flush(lambda session: None)
    before = stored_state(db, job.id)
    assert before[0] == 11

    leader.let_go()
    buf.close(["more", "lines"])
    with pytest.raises(LeadLost):
        writer.flush(
            lambda session: ending.finish_job(
                session=session, job_id=job.id, status=Status.SUCCESSFUL, rc=0, hosts={}, error=None
            )
        )
    assert stored_state(db, job.id) == before  # no line, no end: the row is the next leader's
    assert stored_state(db, job.id)[3] == Status.RUNNING


def test_fifty_concurrent_submissions_start_one_job(db: Database) -> None:
    """As from many replicas at once: no lock of the process helps, only the database."""
    start = threading.Barrier(50)

    def submit(index: int) -> int | JobActive:
        start.wait(timeout=30)
        try:
            return accept(db, names=[f"10.0.1.{index}"]).id
        except JobActive as exc:
            return exc

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(submit, range(50)))
    accepted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, JobActive)]
    assert len(accepted) == 1
    assert len(refused) == 49
    assert {(r.status_code, r.details["job_id"], r.details["kind"]) for r in refused} == {
        (409, accepted[0], Kind.DISCOVER)
    }
    with db.read() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Job)) == 1


def test_recover_interrupts_another_leaders_job_and_leaves_a_queued_one(
    db: Database, leader: SoleLeader, data_dir: Path, db_url: str
) -> None:
    with db.write() as session:
        node = NodeCreate(name="m1", address="127.0.0.1", host_group=HostGroup.MASTER)
        nodes.register_nodes(session=session, nodes=[node], actor="test")
    accept(db, Kind.COMMISSION, ["m1"])
    job = claim(db, leader, as_replica="replica-b:9007")  # run by another replica, which died
    buf = LogBuffer(cap_bytes=1 << 20)
    buf.append_lines(["PLAY [commission]", "TASK [Wait]"])
    LogWriter(db=db, leadership=leader, job_id=job.id, buffer=buf).flush(lambda session: None)
    buf.append_lines(["never stored"])  # lost with the replica that printed it

    runner = JobRunner(
        db=db, settings=job_settings(data_dir, db_url), leadership=leader, signals=Signals(db)
    )
    runner.recover()
    with db.read() as session:
        row = jobs.get_job(session=session, job_id=job.id)
        assert nodes.find_nodes(session=session, names=["m1"])["m1"].state == "failed"
    assert row.status == Status.INTERRUPTED
    assert row.active_slot is None
    assert "the replica replica-b:9007 that ran it stopped or lost the lead" in (row.error or "")
    lines = served(db, LogCache(cap_bytes=1 << 20), job.id).log.read()
    assert lines.complete
    assert lines.lines == [
        "PLAY [commission]",
        "TASK [Wait]",
        "",
        f"[clusterm: job {job.id} interrupted: clusterm stopped while this job was running "
        "(the replica replica-b:9007 that ran it stopped or lost the lead)]",
    ]

    queued = accept(db)  # never claimed: the runner runs it, recover leaves it alone
    runner.recover()
    with db.read() as session:
        again = jobs.get_job(session=session, job_id=queued.id)
    assert (again.status, again.leader) == (Status.QUEUED, None)
    # And a replica that does not lead recovers nothing.
    leader.let_go()
    with pytest.raises(LeadLost):
        runner.recover()


def test_only_the_newest_jobs_keep_their_stored_logs(db: Database, leader: SoleLeader) -> None:
    ids = []
    for n in range(4):
        accept(db)
        job = claim(db, leader)
        buf = LogBuffer(cap_bytes=1 << 20)
        buf.append_lines([f"job {job.id} line {i}" for i in range(50)])
        buf.close([f"end of {n}"])

        def finish(session: sa.orm.Session, job_id: int = job.id) -> Job:
            return ending.finish_job(
                session=session, job_id=job_id, status=Status.SUCCESSFUL, rc=0, hosts={}, error=None
            )

        LogWriter(db=db, leadership=leader, job_id=job.id, buffer=buf).flush(finish)
        ids.append(job.id)
    with db.write() as session:
        logstore.drop_old_logs(session=session, kept=2)
    with db.read() as session:
        logs = set(session.scalars(sa.select(JobLog.job_id)))
        chunked = set(session.scalars(sa.select(JobLogChunk.job_id)))
        rows = set(session.scalars(sa.select(Job.id)))
    assert logs == chunked == set(ids[-2:])
    assert rows == set(ids)  # the jobs themselves stay
    # An older job is still served, saying its log is no longer kept.
    old = served(db, LogCache(cap_bytes=1 << 20), ids[0])
    assert old.log.read().lines == ["[clusterm: this job's log is no longer kept]"]
