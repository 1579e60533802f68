"""Retention: only the oldest go, recent history is kept, the audit trail and the rest are capped
apart, and the daemon purges on its own."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import Database, utcnow
from app.main import create_app
from app.runtime import runtime_of
from app.timeline import retention
from app.timeline import service as timeline
from app.timeline.filters import TimelineFilter
from app.timeline.models import TimelineEvent
from tests.polling import wait_until
from tests.timeline.conftest import write_events


def kept(db: Database, **where: object) -> list[int]:
    query = sa.select(TimelineEvent.id).filter_by(**where).order_by(TimelineEvent.id)
    with db.read() as session:
        return list(session.scalars(query))


def age(db: Database, ids: list[int], days: int) -> None:
    with db.write() as session:
        session.execute(
            sa.update(TimelineEvent)
            .where(TimelineEvent.id.in_(ids))
            .values(occurred_at=utcnow() - dt.timedelta(days=days))
        )


def test_total_cap_removes_only_the_oldest_in_batches(store: Database) -> None:
    ids = write_events(store, 50, node="n1")
    policy = retention.Policy(
        keep_days=30, max_events=20, max_audit_events=1000, max_per_node=1000, batch=7
    )
    assert retention.purge(db=store, policy=policy) == 30
    assert kept(store) == ids[-20:]
    with store.read() as session:
        assert timeline.purged_through(session=session) == ids[29]
        page = timeline.list_timeline(session=session, filters=TimelineFilter(), limit=5)
    assert page.oldest_id == ids[30]  # where history now starts
    assert page.latest_id == ids[-1]
    assert retention.purge(db=store, policy=policy) == 0  # nothing more to do


def test_per_node_cap_spares_recent_events_and_other_nodes(store: Database) -> None:
    a_old = write_events(store, 20, node="a")
    a_new = write_events(store, 10, node="a")
    b_old = write_events(store, 5, node="b")
    c_new = write_events(store, 25, node="c")
    cluster_old = write_events(store, 30)  # no node: only the total cap applies
    age(store, a_old + b_old + cluster_old, days=40)
    policy = retention.Policy(
        keep_days=30, max_events=1000, max_audit_events=1000, max_per_node=12, batch=4
    )
    assert retention.purge(db=store, policy=policy) == 18
    assert kept(store, node_name="a") == a_old[-2:] + a_new  # the newest 12
    assert kept(store, node_name="b") == b_old  # under the cap
    assert kept(store, node_name="c") == c_new  # over the cap, but recent: all kept
    assert kept(store, node_name=None) == cluster_old


def test_the_daemon_purges_in_the_background(settings: Settings) -> None:
    fast = settings.model_copy(
        update={"timeline_max_events": 1000, "timeline_purge_interval_s": 0.1}
    )
    with TestClient(create_app(fast)) as client:
        db: Database = runtime_of(client.app).db
        ids = write_events(db, 1200)
        wait_until(
            lambda: len(kept(db, audit=False)) == 1000, timeout_s=20, what="the background purge"
        )
        assert kept(db, audit=False) == ids[-1000:]
        assert len(kept(db, audit=True)) == 1  # the bootstrap token's event: not theirs to cap


def test_a_flood_of_one_kind_never_erases_the_other(store: Database) -> None:
    audit_old = write_events(store, 30, action="token", reason="TokenCreated")
    ordinary_flood = write_events(store, 100, node="n1")
    policy = retention.Policy(
        keep_days=30, max_events=20, max_audit_events=40, max_per_node=1000, batch=8
    )
    assert retention.purge(db=store, policy=policy) == 80
    assert kept(store, audit=True) == audit_old  # the flood of ordinary events spared them
    assert kept(store, audit=False) == ordinary_flood[-20:]

    # Now refusals by the thousand: the audit cap takes the oldest audit events, nothing else.
    refusals = write_events(store, 100, action="authorize", reason="Forbidden", severity="audit")
    assert retention.purge(db=store, policy=policy) == 90
    assert kept(store, audit=True) == refusals[-40:]
    assert kept(store, audit=False) == ordinary_flood[-20:]
    with store.read() as session:
        # The high-water mark of every purged id, whatever its kind: a stream cursor below it
        # may have missed events, one at or above it has not.
        assert timeline.purged_through(session=session) == refusals[-41]


def test_the_per_node_cap_leaves_a_nodes_audit_events_to_the_audit_cap(store: Database) -> None:
    changes = write_events(store, 20, node="a", action="verbosity", reason="VerbositySet")
    outcomes = write_events(store, 20, node="a")
    age(store, changes + outcomes, days=40)
    policy = retention.Policy(
        keep_days=30, max_events=1000, max_audit_events=1000, max_per_node=12, batch=5
    )
    assert retention.purge(db=store, policy=policy) == 8
    assert kept(store, node_name="a", audit=True) == changes
    assert kept(store, node_name="a", audit=False) == outcomes[-12:]


def test_a_verbosity_flood_cannot_push_out_the_rest_of_the_audit_trail(store: Database) -> None:
    # An operator's refused request and an admin's token, then a loop of verbosity changes (an
    # operator may make them without limit): the changes go, the record of who did what stays.
    trail = write_events(store, 1, action="authorize", reason="Forbidden", severity="audit")
    trail += write_events(store, 1, action="token", reason="TokenCreated", severity="audit")
    flood = write_events(store, 100, action="verbosity", reason="VerbositySet", severity="audit")
    policy = retention.Policy(
        keep_days=30, max_events=1000, max_audit_events=40, max_per_node=1000, batch=8
    )
    assert retention.purge(db=store, policy=policy) == 62
    assert kept(store, audit=True) == trail + flood[-38:]

    # The rest of the trail is capped too, once it alone is over the cap: oldest first.
    more = write_events(store, 45, action="token", reason="TokenRevoked", severity="audit")
    retention.purge(db=store, policy=policy)
    assert kept(store, audit=True) == (trail + more)[-40:]
