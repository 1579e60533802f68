"""Signals between replicas on a real PostgreSQL: heard by every replica of this database and
schema, only after the publishing transaction commits, and never by another cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.cluster.signals import DRIFT, JOBS, Signals
from app.db import Database, upgrade

Heard = list[tuple[str, str]]


@pytest.fixture
def two(pg_schema: str) -> Iterator[tuple[Signals, Signals, Heard, threading.Event]]:
    upgrade(pg_schema)
    dbs = [Database(pg_schema), Database(pg_schema)]
    a, b = Signals(dbs[0]), Signals(dbs[1])
    heard: Heard = []
    got = threading.Event()

    def on(channel: str) -> None:
        def callback(payload: str) -> None:
            heard.append((channel, payload))
            got.set()

        b.subscribe(channel, callback)

    on(JOBS)
    on(DRIFT)
    a.start()
    b.start()
    try:
        yield a, b, heard, got
    finally:
        a.stop()
        b.stop()
        for db in dbs:
            db.dispose()


def test_a_signal_reaches_the_other_replica_with_its_payload(
    two: tuple[Signals, Signals, Heard, threading.Event],
) -> None:
    a, _b, heard, got = two
    a.publish(DRIFT, '{"asked": 1}')
    assert got.wait(5), "the other replica never heard the signal"
    assert heard == [(DRIFT, '{"asked": 1}')]


def test_a_signal_sent_in_a_transaction_is_heard_only_once_it_commits(
    two: tuple[Signals, Signals, Heard, threading.Event],
) -> None:
    a, _b, heard, got = two
    with a.db.write() as session:
        a.publish(JOBS, session=session)
        assert not got.wait(1.0), "heard before the transaction committed"
    assert got.wait(5)
    assert heard == [(JOBS, "")]
    got.clear()
    try:
        with a.db.write() as session:
            a.publish(JOBS, session=session)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert not got.wait(1.0), "a rolled-back signal was heard"


def test_another_schema_is_another_cluster_and_hears_nothing(
    two: tuple[Signals, Signals, Heard, threading.Event], pg_schema: str
) -> None:
    _a, _b, _heard, got = two
    # The fixture's schema is this test's; a second cluster lives in another schema.
    other_url = pg_schema.rsplit("%3D", 1)[0] + "%3Dpublic"
    other = Signals(Database(other_url))
    try:
        other.publish(JOBS)
        assert not got.wait(1.0), "a signal crossed from another cluster"
    finally:
        other.db.dispose()
