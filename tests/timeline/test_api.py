"""The timeline API through the real app: paging, filters, text, history, validation, and what
the node and auth routes record."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db import Database, utcnow
from app.timeline.models import TimelineEvent
from tests.conftest import node_body
from tests.timeline.conftest import write_events

CLUSTERM = str(Path(sys.executable).parent / "clusterm")  # the installed command


def ids_of(page: dict[str, Any]) -> list[int]:
    return [e["id"] for e in page["items"]]


def all_ids(db: Database) -> list[int]:
    with db.read() as session:
        return list(session.scalars(sa.select(TimelineEvent.id).order_by(TimelineEvent.id)))


def test_paging_10000_events_by_before_id_returns_each_exactly_once(
    admin: TestClient, db: Database
) -> None:
    write_events(db, 10_000)
    expected = all_ids(db)[::-1]  # newest first
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = admin.get("/info/timeline", params=params).json()
        seen += ids_of(page)
        if page["next_before_id"] is None:
            break
        params = {"limit": 1000, "before_id": page["next_before_id"]}
    assert seen == expected
    assert page["oldest_id"] == expected[-1]
    assert page["latest_id"] == expected[0]
    # And forwards with after_id, as a poller catches up.
    forward: list[int] = []
    cursor = 0
    while True:
        page = admin.get("/info/timeline", params={"limit": 1000, "after_id": cursor}).json()
        if not page["items"]:
            break
        assert ids_of(page) == sorted(ids_of(page), reverse=True)  # still newest first
        forward += reversed(ids_of(page))
        cursor = page["next_after_id"]
    assert forward == expected[::-1]


def test_default_page_is_30_newest_first(admin: TestClient, db: Database) -> None:
    write_events(db, 40)
    page = admin.get("/info/timeline").json()
    assert ids_of(page) == all_ids(db)[::-1][:30]
    assert page["next_before_id"] == page["items"][-1]["id"]


@pytest.fixture
def sample(db: Database) -> dict[str, list[int]]:
    """Events to filter, each group recorded apart; some moved back in time."""
    groups = {
        "boot": all_ids(db),  # the daemon's first start: admin token created (audit)
        "n1_ok": write_events(db, 3, node="n1", action="commission", reason="JobSucceeded"),
        "n1_fail": write_events(
            db,
            2,
            node="n1",
            action="commission",
            reason="PlaybookFailed",
            result="failed",
            severity="error",
            job_id=17,
        ),
        "n2_warn": write_events(
            db,
            2,
            node="n2",
            action="decommission",
            reason="HostUnreachable",
            result="retrying",
            severity="warning",
            job_id=18,
        ),
        "audit": write_events(
            db, 1, action="authorize", reason="Forbidden", result="failed", severity="audit"
        ),
        "debug": write_events(
            db, 1, node="n3", action="verbosity", reason="LevelChanged", severity="debug"
        ),
    }
    with db.write() as session:
        old = utcnow() - dt.timedelta(days=2)
        session.execute(
            sa.update(TimelineEvent)
            .where(TimelineEvent.id.in_(groups["n1_ok"]))
            .values(occurred_at=old)
        )
    return groups


@pytest.mark.parametrize(
    ("params", "groups"),
    [
        ({"node": "n1"}, ["n1_ok", "n1_fail"]),
        ({"node": ["n2", "n3"]}, ["n2_warn", "debug"]),
        ({"action": "commission"}, ["n1_ok", "n1_fail"]),
        ({"reason": "HostUnreachable"}, ["n2_warn"]),
        ({"result": ["failed", "retrying"]}, ["n1_fail", "n2_warn", "audit"]),
        ({"min_severity": "warning"}, ["n1_fail", "n2_warn"]),
        ({"min_severity": "audit"}, ["boot", "n1_fail", "n2_warn", "audit"]),
        ({"min_severity": "info"}, ["boot", "n1_ok", "n1_fail", "n2_warn", "audit"]),
        ({"job": 17}, ["n1_fail"]),
        ({"since": "1d"}, ["boot", "n1_fail", "n2_warn", "audit", "debug"]),
        ({"action": "token"}, ["boot"]),
        ({"until": "1d", "node": "n1"}, ["n1_ok"]),
        ({"node": "n1", "result": "failed", "since": "1h"}, ["n1_fail"]),
    ],
)
def test_each_filter(
    admin: TestClient, sample: dict[str, list[int]], params: dict[str, Any], groups: list[str]
) -> None:
    page = admin.get("/info/timeline", params=params).json()
    expected = sorted((i for g in groups for i in sample[g]), reverse=True)
    assert ids_of(page) == expected


def test_since_and_until_take_iso_8601(admin: TestClient, sample: dict[str, list[int]]) -> None:
    cut = (utcnow() - dt.timedelta(days=1)).isoformat()
    later = admin.get("/info/timeline", params={"since": cut, "node": "n1"}).json()
    assert ids_of(later) == sorted(sample["n1_fail"], reverse=True)
    naive = (utcnow() - dt.timedelta(days=1)).replace(tzinfo=None).isoformat()  # read as UTC
    earlier = admin.get("/info/timeline", params={"until": naive, "node": "n1"}).json()
    assert ids_of(earlier) == sorted(sample["n1_ok"], reverse=True)


def test_text_format_is_one_pasteable_line_per_event_oldest_first(
    admin: TestClient, db: Database
) -> None:
    [event_id] = write_events(
        db,
        1,
        node="node2",
        action="commission",
        reason="PlaybookFailed",
        result="failed",
        severity="error",
        job_id=17,
        actor="ops",
        from_state="provisioning",
        to_state="failed",
        note="TASK [join]\nfatal: unreachable",
    )
    [later] = write_events(db, 1, node="node3", action="register", reason="NodeRegistered")
    with db.write() as session:
        session.execute(
            sa.update(TimelineEvent)
            .where(TimelineEvent.id == event_id)
            .values(occurred_at=dt.datetime(2026, 11, 21, 10, 11, 12, 345678, tzinfo=dt.UTC))
        )
    r = admin.get("/info/timeline", params={"format": "text", "node": ["node2", "node3"]})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert lines[0] == (
        "2026-11-21T10:11:12.345Z node2 commission failed reason=PlaybookFailed severity=error "
        f"state=provisioning->failed job=17 actor=ops id={event_id} "
        "note=TASK [join] fatal: unreachable"
    )
    assert lines[1].split()[1:5] == ["node3", "register", "succeeded", "reason=NodeRegistered"]
    assert r.headers["X-Latest-Id"] == str(later)


BAD = [
    ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"before_id": 5, "after_id": 3}, "after_id"),
    ({"before_id": -1}, "before_id"),
    ({"since": "yesterday"}, "since"),
    ({"since": "10x"}, "since"),
    ({"since": "99999999999999d"}, "since"),
    ({"before_id": 2**64}, "before_id"),
    ({"after_id": 2**64}, "after_id"),
    ({"job": 2**64}, "job"),
    ({"until": "2026-13-01"}, "until"),
    ({"since": "1h", "until": "2h"}, "until"),
    ({"result": "ok"}, "result"),
    ({"min_severity": "loud"}, "min_severity"),
    ({"job": "seventeen"}, "job"),
    ({"action": "Commission Now"}, "action"),
    ({"reason": "playbook failed"}, "reason"),
    ({"format": "xml"}, "format"),
    ({"nodes": "n1"}, "nodes"),
]


def test_bad_parameters_are_422_naming_the_parameter(admin: TestClient) -> None:
    for params, field in BAD:
        r = admin.get("/info/timeline", params=params)
        assert r.status_code == 422, (params, r.text)
        body = r.json()
        assert body["error"] == "ValidationFailed"
        assert [f["field"] for f in body["fields"]] == [field], (params, body)
        assert body["message"].startswith(field)
    r = admin.get("/info/node/n1/history", params={"node": "n2"})
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "node"


def test_node_routes_record_who_did_what(admin: TestClient, as_role: Any) -> None:
    assert admin.post("/nodes", json=[node_body("n1"), node_body("n2")]).status_code == 201
    r = admin.patch("/nodes/n1", json={"labels": {"rack": "r1"}, "vars": {"secret_pw": "hunter2"}})
    assert r.status_code == 200
    assert admin.patch("/nodes/n1", json={"labels": {"rack": "r1"}}).status_code == 200  # no-op
    assert admin.delete("/nodes/n1").status_code == 204

    items = admin.get("/info/timeline", params={"node": ["n1", "n2"]}).json()["items"]
    summary = [
        (e["node"], e["action"], e["reason"], e["from_state"], e["to_state"], e["actor"])
        for e in reversed(items)
    ]
    assert summary == [
        ("n1", "register", "NodeRegistered", None, "registered", "admin"),
        ("n2", "register", "NodeRegistered", None, "registered", "admin"),
        ("n1", "change", "NodeChanged", None, None, "admin"),
        ("n1", "delete", "NodeDeleted", "registered", None, "admin"),
    ]
    change = items[-3]
    assert change["details"]["changed"]["labels"] == {"from": {}, "to": {"rack": "r1"}}
    assert change["details"]["changed"]["vars"] == {"keys": ["secret_pw"]}
    assert "hunter2" not in str(items)  # var values may be secrets: never on the timeline

    history = admin.get("/info/node/n1/history").json()  # the node is gone; its story is not
    assert [e["action"] for e in history["items"]] == ["delete", "change", "register"]
    assert admin.get("/info/node/ghost/history").status_code == 404


def test_refusals_record_nothing_but_403_is_audited(
    client: TestClient, db: Database, as_role: Any
) -> None:
    admin, viewer = as_role("admin"), as_role("viewer")
    assert client.post("/nodes", json=node_body("n1"), headers=admin).status_code == 201
    before = all_ids(db)
    assert client.post("/nodes", json={"name": "Bad Name"}, headers=admin).status_code == 422
    assert client.post("/nodes", json=node_body("n1"), headers=admin).status_code == 409
    r = client.put("/nodes/n1/maintenance", json={"enabled": True}, headers=admin)
    assert r.status_code == 409  # registered -> maintenance is no transition
    assert client.delete("/nodes/n1", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert all_ids(db) == before

    assert client.delete("/nodes/n1", headers=viewer).status_code == 403
    page = client.get("/info/timeline", params={"min_severity": "audit"}, headers=viewer).json()
    event = page["items"][0]
    assert (event["action"], event["reason"], event["severity"], event["actor"]) == (
        "authorize",
        "Forbidden",
        "audit",
        "viewer",
    )
    assert event["details"] == {
        "method": "DELETE",
        "path": "/nodes/n1",
        "role": "viewer",
        "required_role": "admin",
        "refusals_not_recorded": 0,
    }
    assert event["audit"] is True
    assert client.get("/info/node/n1", headers=viewer).status_code == 200  # the node is intact


def test_timeline_needs_a_token_and_has_no_write_route(client: TestClient, as_role: Any) -> None:
    assert client.get("/info/timeline").status_code == 401
    assert client.get("/info/timeline", headers=as_role("viewer")).status_code == 200
    assert client.delete("/info/timeline", headers=as_role("admin")).status_code == 405


def test_token_create_and_revoke_commands_are_audited(db: Database, settings: Any) -> None:
    """`clusterm token create|revoke` run as the admin runs them: another process."""
    env = {
        **os.environ,
        "CLUSTERM_DATA_DIR": str(settings.data_dir),
        "CLUSTERM_DATABASE_URL": settings.effective_database_url,
    }

    def clusterm(*argv: str) -> str:
        done = subprocess.run(
            [CLUSTERM, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    token = clusterm("token", "create", "--role", "viewer", "--name", "ci").strip()
    clusterm("token", "revoke", "ci")
    with db.read() as session:
        rows = list(
            session.scalars(
                sa.select(TimelineEvent)
                .where(TimelineEvent.action == "token")
                .order_by(TimelineEvent.id.desc())
                .limit(2)
            )
        )
    assert [(e.reason, e.severity, e.audit, e.details) for e in rows] == [
        ("TokenRevoked", "audit", True, {"token": "ci", "role": "viewer"}),
        ("TokenCreated", "audit", True, {"token": "ci", "role": "viewer", "expires_at": None}),
    ]
    assert all(e.actor and e.actor.endswith("@clusterm-cli") for e in rows)
    assert token not in str([(e.note, e.details) for e in rows])  # never the token itself
