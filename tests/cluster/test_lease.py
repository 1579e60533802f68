"""The lease on a real PostgreSQL, two replicas in one process: one leads, the fence holds, a
leader that cannot renew kills its playbook before the lease can pass, a release hands over.

These run on PostgreSQL only, and fail (never skip) when it does not answer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.auth.models import Token
from app.cluster import replicas as rows
from app.cluster.leadership import Change, LeadLost
from app.cluster.lease import LeaseLeadership
from app.cluster.models import Lease
from app.cluster.models import Replica as ReplicaRow
from app.cluster.signals import Signals
from app.config import load_settings
from app.db import Database, upgrade
from app.files import lock_sqlite
from app.runtime import _schema_check, open_database

TTL_S = 2.0


class Replica:
    """A LeaseLeadership with what a runtime would hang on it, recorded."""

    def __init__(self, db: Database, signals: Signals, name: str) -> None:
        self.too_old: str | None = None  # set: as if the schema moved past this replica
        self.gained: list[Change] = []
        self.kills: list[float] = []
        self.losses: list[str] = []
        self.lease = LeaseLeadership(
            db=db,
            signals=signals,
            replica_id=name,
            ttl_s=TTL_S,
            cannot_lead=lambda session: self.too_old or _schema_check(session),
            on_gain=self._gain,
            kill_now=lambda: self.kills.append(time.monotonic()),
            on_loss=self._lose,
        )

    async def _gain(self, change: Change) -> None:
        self.gained.append(change)

    async def _lose(self, reason: str) -> None:
        self.losses.append(reason)


@asynccontextmanager
async def replicas(url: str, *names: str) -> AsyncIterator[tuple[Database, list[Replica]]]:
    upgrade(url)
    db = Database(url)
    signals = Signals(db)
    signals.start()
    started = [Replica(db, signals, name) for name in names]
    with db.write() as session:
        for name in names:
            me = rows.Identity(
                replica_id=name, advertise_url=f"http://{name}:9007", version="t", schema="t"
            )
            rows.register(session, me=me, role=rows.FOLLOWER, note=None)
    try:
        for replica in started:
            replica.lease.start(asyncio.get_running_loop())
        yield db, started
    finally:
        for replica in started:
            await replica.lease.quiesce()
            await asyncio.to_thread(replica.lease.release)
        signals.stop()
        db.dispose()


async def until(check: object, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.05)


def leaders(group: list[Replica]) -> list[Replica]:
    return [r for r in group if r.lease.is_leader]


def test_one_of_three_leads_and_only_it_passes_the_fence(pg_schema: str) -> None:
    async def scenario() -> None:
        async with replicas(pg_schema, "a", "b", "c") as (db, group):
            await until(lambda: leaders(group), timeout_s=5, what="a leader")
            await asyncio.sleep(TTL_S)  # several rounds: nobody else takes it meanwhile
            (leader,) = leaders(group)
            assert len(leader.gained) == 1
            assert leader.gained[0].previous is None
            for replica in group:
                with db.write() as session:
                    if replica is leader:
                        replica.lease.fence(session)
                    else:
                        with pytest.raises(LeadLost):
                            replica.lease.fence(session)
            with db.read() as session:
                info = leader.lease.leader(session)
            assert info is not None
            assert info.replica_id == leader.lease.replica_id

    asyncio.run(scenario())


def test_a_lead_taken_over_fails_the_old_leaders_fence_and_kills_its_playbook(
    pg_schema: str,
) -> None:
    async def scenario() -> None:
        async with replicas(pg_schema, "a") as (db, (a,)):
            await until(lambda: a.lease.is_leader, timeout_s=5, what="a leads")
            # Another replica took the lead while this one was paused (a GC pause, a cut).
            with db.write() as session:
                session.execute(
                    sa.update(Lease).values(
                        holder="intruder", epoch=Lease.epoch + 1, expires_at=sa.func.now()
                    )
                )
            with db.write() as session, pytest.raises(LeadLost):
                a.lease.fence(session)
            await until(lambda: a.losses, timeout_s=5, what="a steps down")
            assert a.kills, "the running playbook must be killed when the lead is lost"

    asyncio.run(scenario())


def test_a_leader_that_cannot_renew_kills_before_its_lease_can_pass(pg_schema: str) -> None:
    async def scenario() -> None:
        async with replicas(pg_schema, "a") as (db, (a,)):
            await until(lambda: a.lease.is_leader, timeout_s=5, what="a leads")
            # The database stalls for this replica: its lease row stays locked, so renewals
            # time out. Record when the lease was last renewed, on the database's clock.
            blocker = db.engine.connect()
            blocker.begin()
            expires = blocker.execute(
                sa.select(Lease.expires_at).where(Lease.id == 1).with_for_update()
            ).scalar_one()
            t0 = time.monotonic()
            db_now = blocker.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
            try:
                await until(lambda: a.kills, timeout_s=TTL_S * 3, what="a kills its playbook")
                killed_after = a.kills[0] - t0
                # The kill came before the lease ran out (expires - now, on the DB clock).
                assert killed_after < (expires - db_now).total_seconds()
                assert not a.lease.is_leader
            finally:
                blocker.rollback()
                blocker.close()

    asyncio.run(scenario())


def test_a_released_lead_is_taken_at_once_and_the_why_says_handed_over(pg_schema: str) -> None:
    async def scenario() -> None:
        async with replicas(pg_schema, "a", "b") as (db, group):
            await until(lambda: leaders(group), timeout_s=5, what="a leader")
            (first,) = leaders(group)
            (other,) = [r for r in group if r is not first]
            # A graceful stop. The release itself marks the row stopped, with the lease let go
            # in one transaction: the other replica may take the lead the moment it commits,
            # before the runtime's own marking, and must still read a handover.
            await first.lease.quiesce()
            t0 = time.monotonic()
            await asyncio.to_thread(first.lease.release)
            with db.read() as session:
                row = session.get(ReplicaRow, first.lease.replica_id)
                assert row is not None
                assert (row.role, row.note) == (rows.STOPPED, "stopped")
            await until(lambda: other.lease.is_leader, timeout_s=TTL_S, what="the other leads")
            assert time.monotonic() - t0 < TTL_S  # not a lease run out: a handover
            assert other.gained[-1].previous == first.lease.replica_id
            assert "handed the lead over" in other.gained[-1].why

    asyncio.run(scenario())


def test_a_leader_the_schema_outgrew_hands_over_without_waiting_out_its_lease(
    pg_schema: str,
) -> None:
    async def scenario() -> None:
        async with replicas(pg_schema, "a", "b") as (_db, group):
            await until(lambda: leaders(group), timeout_s=5, what="a leader")
            (old,) = leaders(group)
            (new,) = [r for r in group if r is not old]
            old.too_old = "the database is at migration 9999, newer than this replica knows"
            t0 = time.monotonic()
            await until(lambda: new.lease.is_leader, timeout_s=TTL_S * 3, what="b leads")
            # A renewal period to notice, then a handover: not the lease's full run.
            assert time.monotonic() - t0 < TTL_S
            assert old.kills
            assert old.losses == [old.too_old]
            assert not old.lease.is_leader

    asyncio.run(scenario())


def test_a_replica_older_than_the_schema_never_leads(pg_schema: str) -> None:
    upgrade(pg_schema)
    engine = sa.create_engine(pg_schema)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    async def scenario() -> None:
        db = Database(pg_schema)
        signals = Signals(db)
        old = Replica(db, signals, "old")
        old.lease.start(asyncio.get_running_loop())
        try:
            await until(lambda: old.lease.note, timeout_s=5, what="the reason it cannot lead")
            assert not old.lease.is_leader
            assert "9999" in (old.lease.note or "")
            assert "never leads" in (old.lease.note or "")
        finally:
            await old.lease.quiesce()
            await asyncio.to_thread(old.lease.release)
            db.dispose()

    asyncio.run(scenario())


def test_replicas_starting_together_migrate_once_and_make_one_admin_token(
    pg_schema: str, tmp_path: Path
) -> None:
    results: list[object] = []

    def start(index: int) -> None:
        settings = load_settings(
            data_dir=tmp_path / f"r{index}",
            database_url=pg_schema,
            admin_token_file=tmp_path / "shared" / "admin.token",
        )
        try:
            db, newer = open_database(settings)
            db.dispose()
            results.append(newer)
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [None] * 4
    engine = sa.create_engine(pg_schema)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Token)) == 1
    engine.dispose()
    assert (tmp_path / "shared" / "admin.token").read_text().strip()


def test_a_second_process_on_one_sqlite_file_is_refused_with_who_holds_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'clusterm.db'}"
    release = lock_sqlite(url, owner={"pid": os.getpid(), "serving": "http://127.0.0.1:1"})
    try:
        # Within one process the lock is shared (two runtimes of one daemon)...
        lock_sqlite(url, owner={"pid": os.getpid()})()
        # ...but another process is refused, told who holds the file and what to do.
        code = (
            "import sys\n"
            "from app.files import AlreadyRunning, lock_sqlite\n"
            f"try:\n    lock_sqlite({url!r}, owner={{}})\n"
            "except AlreadyRunning as exc:\n    print(exc); sys.exit(7)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert other.returncode == 7, other.stderr
        assert f"pid {os.getpid()}" in other.stdout
        assert "http://127.0.0.1:1" in other.stdout
        assert "PostgreSQL" in other.stdout
    finally:
        release()
    # Released: a later daemon takes it.
    lock_sqlite(url, owner={})()
