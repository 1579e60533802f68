"""The comparison at the heart of the drift watch, against a real database and timeline."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import Database
from app.drift import service as drift
from app.nodes import service as nodes
from app.nodes.models import Node
from tests.conftest import admin_client, node_body

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def setup_nodes(admin: TestClient, db: Database) -> None:
    admin.post(
        "/nodes",
        json=[node_body("m1", host_group="master"), node_body("w1"), node_body("w2"),
              node_body("w3")],
    )  # fmt: skip
    states = {"m1": "commissioned", "w1": "commissioned", "w2": "maintenance", "w3": "registered"}
    with db.write() as session:
        for name, state in states.items():
            session.execute(sa.update(Node).where(Node.name == name).values(state=state))


def check(db: Database, present: dict[str, str], at: dt.datetime) -> drift.Drift:
    with db.write() as session:
        return drift.apply_node_list(session=session, present=present, now=at)


def drift_events(admin: TestClient) -> list[tuple[str, str]]:
    items = admin.get("/info/timeline", params={"action": "drift"}).json()["items"]
    return [(e["node"], e["reason"]) for e in reversed(items)]


def test_missing_then_returned(admin: TestClient, db: Database) -> None:
    setup_nodes(admin, db)
    found = check(db, {"m1": "u1", "w1": "u2", "w2": "u3"}, T0)
    assert found.missing == []
    nodes = {n["name"]: n for n in admin.get("/info/nodes").json()}
    assert nodes["w1"]["in_cluster"] is True
    assert nodes["w1"]["last_seen_at"] == "2026-11-23T10:00:00Z"
    assert nodes["w3"]["in_cluster"] is False  # registered: absent, as expected
    assert drift_events(admin) == []

    # w1 vanishes: one NodeMissing, however many checks see it missing
    found = check(db, {"m1": "u1", "w2": "u3"}, T0 + dt.timedelta(minutes=5))
    assert (found.missing, found.newly_missing) == (["w1"], ["w1"])
    found = check(db, {"m1": "u1", "w2": "u3"}, T0 + dt.timedelta(minutes=10))
    assert (found.missing, found.newly_missing) == (["w1"], [])
    assert drift_events(admin) == [("w1", "NodeMissing")]
    w1 = admin.get("/info/node/w1").json()
    assert w1["in_cluster"] is False
    assert w1["last_seen_at"] == "2026-11-23T10:00:00Z"
    assert w1["missing_since"] == "2026-11-23T10:05:00Z"
    event = admin.get("/info/timeline", params={"reason": "NodeMissing"}).json()["items"][0]
    assert event["severity"] == "warning"
    assert event["actor"] == "drift-watch"
    assert "not in the cluster's Node list" in event["note"]

    # it comes back
    found = check(db, {"m1": "u1", "w1": "u9", "w2": "u3"}, T0 + dt.timedelta(minutes=15))
    assert found.returned == ["w1"]
    assert drift_events(admin) == [("w1", "NodeMissing"), ("w1", "NodeReturned")]
    returned = admin.get("/info/timeline", params={"reason": "NodeReturned"}).json()["items"][0]
    assert "after 600 s missing" in returned["note"]
    w1 = admin.get("/info/node/w1").json()
    assert (w1["in_cluster"], w1["missing_since"]) == (True, None)


def test_the_master_asked_is_the_first_master(admin: TestClient, db: Database) -> None:
    """The oldest commission among the masters in the cluster (nodes.first_master), whatever
    their names and registration order; one in maintenance still serves the Node list."""
    setup_nodes(admin, db)
    admin.post("/nodes", json=node_body("m0", host_group="master"))
    with db.write() as session:
        session.execute(
            sa.update(Node)
            .where(Node.name == "m0")
            .values(state="commissioned", commissioned_at=T0 - dt.timedelta(days=1))
        )
        session.execute(sa.update(Node).where(Node.name == "m1").values(commissioned_at=T0))
    with db.write() as session:
        master = nodes.first_master(session=session)
        assert master is not None
        assert master.name == "m0"
        session.execute(sa.update(Node).where(Node.name == "m0").values(state="maintenance"))
    with db.write() as session:
        master = nodes.first_master(session=session)
        assert master is not None
        assert master.name == "m0"
        session.execute(sa.update(Node).where(Node.name == "m0").values(state="failed"))
    with db.read() as session:
        master = nodes.first_master(session=session)
        assert master is not None
        assert master.name == "m1"


def test_drift_routes_before_any_check(admin: TestClient, as_role) -> None:  # type: ignore[no-untyped-def]
    r = admin.get("/info/drift")
    assert r.status_code == 404
    assert "POST /drift/check" in r.json()["message"]
    # No commissioned master: the check is skipped and says why.
    r = admin.post("/drift/check")
    assert r.status_code == 200
    assert r.json()["outcome"] == "skipped"
    assert "no master in the cluster" in r.json()["message"]
    assert admin.get("/info/drift").json()["outcome"] == "skipped"


def test_the_last_check_survives_a_restart(settings: Settings) -> None:
    """The last check is a row: a restarted daemon (or another replica) answers it at once,
    not 404 until its next interval."""
    with admin_client(settings) as first:
        asked = first.post("/drift/check")
        assert asked.status_code == 200, asked.text
        before = first.get("/info/drift").json()
    with admin_client(settings) as again:
        after = again.get("/info/drift")
        assert after.status_code == 200, after.text
        assert after.json() == before
