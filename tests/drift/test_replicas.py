"""Drift checks through the database: asked for on any replica, run by the leader, answered.

The app is the leader; `follower` is a drift watch of another replica on the same database, in
this test process (its own connections and signals on PostgreSQL), whose lead is someone else's.
On SQLite there is one process by design: the follower then shares the app's signals, as
everything in one process does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.cluster.leadership import LeaderInfo, LeadLost
from app.cluster.signals import Signals
from app.db import Database, utcnow
from app.drift import asking, checks
from app.drift.checks import Check, CheckRunning
from app.drift.models import DriftCheck
from app.drift.watch import DriftWatch
from app.errors import Unavailable
from app.runtime import runtime_of
from app.timeline import service as timeline

SECOND = "replica-2:9007"


class Follower:
    """The lead of a replica that does not lead: `leads` is whom it sees leading."""

    def __init__(self, leads: str | None) -> None:
        self.replica_id = SECOND
        self.leads = leads

    @property
    def is_leader(self) -> bool:
        return False

    @property
    def epoch(self) -> int:
        return 0

    def fence(self, session: Session) -> None:
        raise LeadLost()

    def leader(self, session: Session) -> LeaderInfo | None:
        return None if self.leads is None else LeaderInfo(self.leads, 1, None)


class NoJobs:
    active = None

    def submit(self, **kwargs: Any) -> Any:
        raise AssertionError("a follower queues no job")


@pytest.fixture
def follower(admin: TestClient) -> Iterator[Callable[..., DriftWatch]]:
    runtime = runtime_of(admin.app)
    postgres = runtime.db.engine.dialect.name == "postgresql"
    made: list[tuple[Database, Signals]] = []

    def make(*, leads: str | None) -> DriftWatch:
        if postgres:
            db = timeline.attach(Database(runtime.db.url))
            signals = Signals(db)
            signals.start()
            made.append((db, signals))
        else:
            db, signals = runtime.db, runtime.services.signals
        return DriftWatch(
            db=db,
            settings=runtime.settings,
            jobs=NoJobs(),
            leadership=Follower(leads),
            signals=signals,
        )

    yield make
    for db, signals in made:
        signals.stop()
        db.dispose()


def ask(admin: TestClient, on: DriftWatch) -> Check:
    portal = admin.portal
    assert portal is not None
    return portal.call(lambda: asking.ask(on, actor="operator"))


def rows(admin: TestClient) -> list[DriftCheck]:
    with runtime_of(admin.app).db.read() as session:
        return list(session.scalars(sa.select(DriftCheck).order_by(DriftCheck.id)))


def test_a_check_asked_on_a_follower_is_run_by_the_leader_and_answered(
    admin: TestClient, follower: Callable[..., DriftWatch]
) -> None:
    leader = runtime_of(admin.app).leadership.replica_id
    other = follower(leads=leader)
    started = time.monotonic()
    found = ask(admin, other)
    # The leader heard the signal: no wait for its one-second poll, nor for the interval.
    assert time.monotonic() - started < 5
    assert (found.outcome, found.message) == ("skipped", "no master in the cluster to ask")
    [row] = rows(admin)
    assert (row.status, row.requested_by, row.replica) == ("done", "operator", leader)
    # Every replica reads the same last check.
    assert admin.get("/info/drift").json()["message"] == "no master in the cluster to ask"
    assert asking.last_check(other) == found


def test_with_no_leader_a_check_is_refused_at_once(
    admin: TestClient, follower: Callable[..., DriftWatch]
) -> None:
    started = time.monotonic()
    with pytest.raises(Unavailable) as refused:
        ask(admin, follower(leads=None))
    assert time.monotonic() - started < 5
    assert refused.value.retry_after_s == 5
    postgres = runtime_of(admin.app).db.engine.dialect.name == "postgresql"
    expected = "no clusterm replica leads" if postgres else "clusterm is stopping"
    assert expected in refused.value.message
    assert rows(admin) == []  # nothing asked for, nothing left to block the next check


def test_a_check_the_leader_does_not_take_is_refused_and_closed(
    admin: TestClient, follower: Callable[..., DriftWatch], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asking, "PICKUP_S", 1.0)
    runtime = runtime_of(admin.app)
    portal = admin.portal
    assert portal is not None
    # The leader's watch is stopped (a leader stopping, or wedged): nobody takes the check.
    portal.call(runtime.background.stop)
    other = follower(leads=runtime.leadership.replica_id)
    with pytest.raises(Unavailable) as refused:
        ask(admin, other)
    assert "did not take the drift check within 1 s" in refused.value.message
    [row] = rows(admin)
    assert (row.status, row.outcome) == ("done", "failed")
    assert "its asker gave up" in (row.message or "")
    # Closed, so it blocks nothing: once the leader runs again, the next check is answered.
    portal.call(runtime.background.start)
    assert ask(admin, other).outcome == "skipped"


def test_a_check_asked_while_one_is_asked_for_is_409_naming_since_when(
    admin: TestClient, follower: Callable[..., DriftWatch]
) -> None:
    runtime = runtime_of(admin.app)
    portal = admin.portal
    assert portal is not None
    portal.call(runtime.background.stop)
    with runtime.db.write() as session:
        first = checks.request(session=session, actor="viewer", stale_before=utcnow())
    r = admin.post("/drift/check")
    assert r.status_code == 503  # this replica leads but is stopping: refused before asking
    with pytest.raises(CheckRunning) as running:
        ask(admin, follower(leads=runtime.leadership.replica_id))
    assert "already running (since " in running.value.message
    assert running.value.details["running_since"]
    assert [r.id for r in rows(admin)] == [first]


def test_the_leader_closes_what_the_last_leader_left_running(admin: TestClient) -> None:
    runtime = runtime_of(admin.app)
    portal = admin.portal
    assert portal is not None
    portal.call(runtime.background.stop)
    with runtime.db.write() as session:
        session.add(
            DriftCheck(status="running", requested_at=utcnow(), at=utcnow(), replica="gone:1")
        )
    portal.call(runtime.background.start)  # a new lead
    [left] = rows(admin)
    assert (left.status, left.outcome) == ("done", "failed")
    assert "gone:1 stopped leading" in (left.message or "")
    r = admin.post("/drift/check")
    assert r.status_code == 200, r.text
    assert admin.get("/info/drift").json()["outcome"] == "skipped"


def test_only_the_last_hundred_checks_are_kept(admin: TestClient) -> None:
    db = runtime_of(admin.app).db
    for n in range(checks.KEEP + 5):
        with db.write() as session:
            taken = checks.take_next(session=session, replica="r", interval_due=True)
            assert taken is not None
            checks.finish(
                session=session, check_id=taken, check=Check(utcnow(), "checked", f"check {n}")
            )
    kept = rows(admin)
    assert len(kept) == checks.KEEP
    assert kept[-1].message == f"check {checks.KEEP + 4}"
    assert kept[0].message == "check 5"
    assert admin.get("/info/drift").json()["message"] == f"check {checks.KEEP + 4}"
