"""Concurrent writes on SQLite queue: read-then-write transactions do not deadlock, and no writer
of the daemon's own loses its turn to later ones until its timeout runs out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import db as store
from app.errors import database_busy
from app.nodes import service
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate
from app.timeline import service as timeline
from app.timeline.vocabulary import Result
from tests.polling import wait_until


def sqlite_store(tmp_path: Path, busy_timeout_ms: int) -> store.Database:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store.upgrade(url)
    return timeline.attach(store.Database(url, busy_timeout_ms=busy_timeout_ms))


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """`work(0)` to `work(count - 1)`, each in a thread of its own, all at once; when all end."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_read_modify_write_never_fails(tmp_path: Path) -> None:
    db = sqlite_store(tmp_path, busy_timeout_ms=10_000)
    with db.write() as session:
        service.register_nodes(
            session=session, nodes=[NodeCreate(name="n1", address="10.0.0.1")], actor="test"
        )

    errors: list[BaseException] = []

    def bump(_: int) -> None:
        try:
            for _ in range(25):
                # Read, then write, in one transaction: with a deferred BEGIN two of these
                # deadlock on the lock upgrade and one fails with "database is locked".
                with db.write() as session:
                    node = session.scalar(sa.select(Node).where(Node.name == "n1"))
                    assert node is not None
                    node.ssh_port = node.ssh_port + 1
        except BaseException as exc:
            errors.append(exc)

    in_threads(8, bump)
    assert errors == []
    with db.read() as session:
        assert session.scalar(sa.select(Node.ssh_port)) == 22 + 8 * 25
    db.dispose()


def test_writers_of_one_process_take_turns_in_the_order_they_came(tmp_path: Path) -> None:
    """Six threads write 25 times each, every transaction 20 ms long: 3 s of writes, and a
    1 s timeout. Taking turns, a writer waits for at most the five ahead of it (about 0.1 s).
    SQLite's own wait is no queue: it sleeps and tries again, later writers take the lock in
    between, and without clusterm's queue six or seven writes of each such run failed with
    "database is locked"."""
    db = sqlite_store(tmp_path, busy_timeout_ms=1000)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        for n in range(25):
            try:
                with db.write() as session:
                    timeline.record_event(
                        session=session, action="test", reason="Tested", result=Result.SUCCEEDED,
                        details={"worker": worker, "n": n},
                    )  # fmt: skip
                    time.sleep(0.02)
            except BaseException as exc:
                errors.append(exc)

    in_threads(6, write)
    assert errors == []
    with db.read() as session:
        assert session.scalar(sa.text("SELECT count(*) FROM timeline_event")) == 6 * 25
    db.dispose()


def test_a_writer_that_waits_past_the_timeout_gets_the_busy_error_and_stores_nothing(
    tmp_path: Path,
) -> None:
    db = sqlite_store(tmp_path, busy_timeout_ms=200)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write() as session:
            service.register_nodes(
                session=session, nodes=[NodeCreate(name="n1", address="10.0.0.1")], actor="a"
            )
            holding.set()
            done.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)
    try:
        with pytest.raises(sa.exc.OperationalError) as raised, db.write() as session:
            service.register_nodes(
                session=session, nodes=[NodeCreate(name="n2", address="10.0.0.2")], actor="b"
            )
    finally:
        done.set()
        holder.join(30)
    # The error the HTTP layer turns into a 503 with Retry-After, as for SQLite's own timeout.
    busy = database_busy(raised.value)
    assert busy is not None
    assert "send the same request again" in str(busy)
    with db.read() as session:
        assert list(session.scalars(sa.select(Node.name))) == ["n1"]
    with db.write() as session:  # the queue is free again once the holder is done
        service.register_nodes(
            session=session, nodes=[NodeCreate(name="n2", address="10.0.0.2")], actor="b"
        )
    with db.read() as session:
        assert sorted(session.scalars(sa.select(Node.name))) == ["n1", "n2"]
    db.dispose()


def test_the_queue_hands_the_lock_over_first_come_first_served() -> None:
    queue = store.WriterQueue()
    assert queue.acquire(1)
    order: list[int] = []
    waiting = [threading.Event() for _ in range(4)]

    def wait_turn(n: int) -> None:
        waiting[n].set()
        assert queue.acquire(30)
        order.append(n)
        queue.release()

    threads = []
    for n in range(4):  # each starts waiting only after the one before it is in the queue
        threads.append(threading.Thread(target=wait_turn, args=(n,)))
        threads[-1].start()
        assert waiting[n].wait(30)
        queued = n + 1
        wait_until(
            lambda: len(queue._waiters) == queued,  # noqa: B023  (waited for here, in the loop)
            timeout_s=30,
            what=f"waiter {n} in the queue",
        )
    assert not queue.acquire(0.05)  # taken, and a waiter that gives up leaves no trace
    assert len(queue._waiters) == 4
    queue.release()
    for t in threads:
        t.join(30)
    assert order == [0, 1, 2, 3]
    assert queue.acquire(0)  # free again
