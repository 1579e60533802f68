"""Verbosity with a second replica on the same database, in this test process: the app is the
leader, `second` another replica (a Verbosity of its own, its own connections and signals on
PostgreSQL, a lead it does not hold).

On SQLite there is one process by design: the second context then stands for another caller in
it, and shares its locks and signals, as everything in one process does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.cluster.leadership import LeaderInfo, LeadLost
from app.cluster.models import Replica
from app.cluster.signals import Signals
from app.db import Database, utcnow
from app.runtime import runtime_of
from app.timeline import service as timeline
from app.verbosity import service
from app.verbosity.service import Verbosity
from tests.polling import wait_until
from tests.verbosity.conftest import TOKEN, register
from tests.verbosity.emulator import Emulator, Endpoint
from tests.verbosity.test_reverts import change, events, known

SECOND = "replica-2:9007"


class Follower:
    """A lead this replica does not hold: its fence refuses, after `fences` that pass (a lead
    lost between two of them)."""

    def __init__(self, *, fences: int = 0) -> None:
        self.replica_id = SECOND
        self.fences = fences
        self.leading = fences > 0  # until a fence refuses: the lease thread has not noticed

    @property
    def is_leader(self) -> bool:
        return self.leading

    @property
    def epoch(self) -> int:
        return 0

    def fence(self, session: Session) -> None:
        if self.fences <= 0:
            self.leading = False
            raise LeadLost()
        self.fences -= 1

    def leader(self, session: Session) -> LeaderInfo | None:
        return None


@dataclass
class Second:
    ctx: Verbosity
    db: Database
    signals: Signals
    own_db: bool


@pytest.fixture
def second(admin: TestClient) -> Iterator[Callable[..., Second]]:
    portal = admin.portal
    assert portal is not None
    runtime = runtime_of(admin.app)
    postgres = runtime.db.engine.dialect.name == "postgresql"
    made: list[Second] = []

    def make(*, fences: int = 0) -> Second:
        if postgres:
            db = timeline.attach(Database(runtime.db.url))
            signals = Signals(db)
            signals.start()
        else:
            db, signals = runtime.db, runtime.services.signals

        async def create() -> Verbosity:
            return Verbosity.create(
                db=db,
                settings=runtime.settings,
                leadership=Follower(fences=fences),
                signals=signals,
            )

        ctx = portal.call(create)
        if not postgres:
            ctx.locks = runtime.verbosity.locks  # one process, one set of locks
        made.append(Second(ctx, db, signals, own_db=postgres))
        return made[-1]

    yield make
    for one in made:
        portal.call(one.ctx.close)
        if one.own_db:
            one.signals.stop()
            one.db.dispose()


def kubelet(admin: TestClient, emulators: Callable[..., Emulator], **options: Any) -> Endpoint:
    emulator = emulators()
    endpoint = emulator.add("n1", token=TOKEN, **options)
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    return endpoint


def test_two_replicas_never_change_one_target_at_once(
    admin: TestClient, emulators: Callable[..., Emulator], second: Callable[..., Second]
) -> None:
    # Each answer takes a while: without locks shared by the replicas, their PUTs would be
    # served at the same time.
    endpoint = kubelet(admin, emulators, delay_s=0.3)
    leader, other = runtime_of(admin.app).verbosity, second().ctx
    portal = admin.portal
    assert portal is not None

    async def contend() -> None:
        await asyncio.gather(
            *(
                service.change(
                    ctx=ctx,
                    component="kubelet",
                    selection=["n1"],
                    level=level,
                    ttl_s=0,
                    actor=f"actor{level}",
                )
                for level, ctx in [(3, leader), (4, other), (5, leader), (6, other)]
            )
        )

    portal.call(contend)
    puts = sorted((r for r in endpoint.requests if r.method == "PUT"), key=lambda r: r.received_at)
    assert len(puts) == 4
    for earlier, later in itertools.pairwise(puts):
        assert later.received_at >= earlier.answered_at, "two replicas changed n1 at once"
    # And what clusterm recorded is what the component holds: the last change sent.
    assert known(admin)["n1"]["level"] == endpoint.level == int(puts[-1].body)
    assert known(admin)["n1"]["set_by"] == f"actor{endpoint.level}"


def test_a_revert_by_a_replica_that_lost_the_lead_changes_nothing(
    admin: TestClient, emulators: Callable[..., Emulator], second: Callable[..., Second]
) -> None:
    endpoint = kubelet(admin, emulators)
    runtime = runtime_of(admin.app)
    portal = admin.portal
    assert portal is not None
    portal.call(runtime.background.stop)  # the leader's own worker must not revert first
    report = change(admin, ["n1"], 5, "1s")
    due = dt.datetime.fromisoformat(report["reverts_at"])
    wait_until(lambda: utcnow() > due, timeout_s=10, what="the revert to come due")

    # No lead at all: nothing sent, nothing written.
    follower = second(fences=0).ctx
    with pytest.raises(LeadLost):
        portal.call(lambda: service.revert_due(ctx=follower))
    assert (endpoint.puts, endpoint.level) == (1, 5)
    assert known(admin)["n1"]["reverts_at"] is not None
    assert events(admin, reason="VerbosityReverted") == []

    # The lead lost while sending: the component was reverted, but a replica that no longer
    # leads records nothing; the revert stays due, for the leader.
    deposed = second(fences=1).ctx
    with pytest.raises(LeadLost):
        portal.call(lambda: service.revert_due(ctx=deposed))
    assert (endpoint.puts, endpoint.level) == (2, 2)
    row = known(admin)["n1"]
    assert (row["level"], row["reverts_at"] is not None) == (5, True)
    assert events(admin, reason="VerbosityReverted") == []

    # The leader runs it (again: a revert run twice changes nothing) and records it.
    portal.call(runtime.background.start)
    wait_until(
        lambda: known(admin)["n1"]["reverts_at"] is None, timeout_s=30, what="the revert recorded"
    )
    assert known(admin)["n1"]["level"] == 2
    [reverted] = events(admin, reason="VerbosityReverted")
    assert reverted["result"] == "succeeded"


def test_a_change_on_any_replica_wakes_the_leaders_revert_worker(
    admin: TestClient, emulators: Callable[..., Emulator], second: Callable[..., Second]
) -> None:
    endpoint = kubelet(admin, emulators)
    portal = admin.portal
    assert portal is not None
    other = second().ctx
    # The leader's worker has nothing pending and sleeps for POLL_S (30 s); the revert due in a
    # second is run well before that only if the change's signal woke it.
    report, _ = portal.call(
        lambda: service.change(
            ctx=other, component="kubelet", selection=["n1"], level=6, ttl_s=1, actor="admin"
        )
    )
    assert report.succeeded == 1
    assert endpoint.level == 6
    wait_until(lambda: endpoint.level == 2, timeout_s=10, what="the leader to revert n1")
    wait_until(
        lambda: known(admin)["n1"]["reverts_at"] is None, timeout_s=10, what="the revert recorded"
    )


def seen_replica(admin: TestClient, replica_id: str) -> None:
    """A row for a replica that runs (a real one writes its own at start-up)."""
    now = utcnow()
    with runtime_of(admin.app).db.write() as session:
        session.add(
            Replica(
                id=replica_id, advertise_url="http://127.0.0.1:9007", version="test",
                schema="0008", hostname="test", pid=1, role="follower", role_since=now,
                can_lead=True, started_at=now, seen_at=now,
            )
        )  # fmt: skip


def own_events(admin: TestClient) -> list[dict[str, Any]]:
    return [
        e for e in events(admin, reason="VerbositySet") if e["details"]["component"] == "clusterm"
    ]


def test_replicas_all_sets_every_replicas_own_level(
    admin: TestClient, second: Callable[..., Second]
) -> None:
    other = second().ctx
    me = runtime_of(admin.app).leadership.replica_id
    seen_replica(admin, SECOND)

    r = admin.put("/debug/flags/v", content=b"4", params={"replicas": "all", "ttl": "10m"})
    assert r.status_code == 200, r.text
    assert r.content == b"successfully set klog.logging.verbosity to 4\n"  # Kubernetes' own
    assert r.headers["X-Clusterm-Replicas"] == "2"
    assert admin.get("/debug/flags/v").text == "4\n"
    wait_until(lambda: other.own.state.level == 4, timeout_s=10, what="the other replica at V4")
    assert other.own.state.set_by == "admin"
    assert other.own.state.reverts_at is not None  # with the ttl asked for
    recorded = wait_until(
        lambda: found if len(found := own_events(admin)) == 2 else None,
        timeout_s=10,
        what="one VerbositySet per replica",
    )
    by_replica = {e["details"]["replica"]: e for e in recorded}
    assert set(by_replica) == {me, SECOND}
    assert by_replica[SECOND]["details"]["asked_on"] == me
    assert all(e["actor"] == "admin" and e["to_state"] == "4" for e in recorded)

    # Without `replicas`, only the replica that answers.
    r = admin.put("/debug/flags/v", content=b"3")
    assert r.status_code == 200
    assert r.headers["X-Clusterm-Replicas"] == "1"
    assert admin.get("/debug/flags/v").text == "3\n"
    wait_until(lambda: len(own_events(admin)) == 3, timeout_s=10, what="the third VerbositySet")
    assert own_events(admin)[0]["details"]["replica"] == me
    assert other.own.state.level == 4


def test_an_unknown_replicas_value_is_refused(admin: TestClient) -> None:
    r = admin.put("/debug/flags/v", content=b"4", params={"replicas": "some"})
    assert r.status_code == 422, r.text
    assert "'all'" in r.json()["message"]
    assert admin.get("/debug/flags/v").text == "2\n"  # nothing changed
