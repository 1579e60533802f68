"""A low role cannot flood the audit trail: at most one refusal event per token per window, the
refusals in between counted into the next event, and events never edited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.auth import service as auth
from app.auth.refusals import RefusalLog
from app.config import Settings
from app.db import Database
from app.main import create_app
from app.runtime import runtime_of
from app.timeline.models import TimelineEvent
from tests.conftest import node_body


def refusals(db: Database) -> list[TimelineEvent]:
    query = sa.select(TimelineEvent).where(TimelineEvent.action == "authorize")
    with db.read() as session:
        return list(session.scalars(query.order_by(TimelineEvent.id)))


def test_a_flood_of_refused_requests_writes_one_event_per_token_per_minute(
    admin: TestClient, db: Database, as_role: Callable[[str], dict[str, str]]
) -> None:
    assert admin.post("/nodes", json=node_body("n1")).status_code == 201
    viewer, operator = as_role("viewer"), as_role("operator")
    for _ in range(200):
        assert admin.delete("/nodes/n1", headers=viewer).status_code == 403
    for _ in range(3):
        assert admin.delete("/nodes/n1", headers=operator).status_code == 403
    written = refusals(db)
    assert [(e.actor, e.details["refusals_not_recorded"]) for e in written] == [  # type: ignore[index]
        ("viewer", 0),
        ("operator", 0),
    ]
    assert all(e.audit for e in written)
    # Every one of them was refused all the same, and the node is intact.
    assert admin.get("/info/node/n1").status_code == 200


def test_the_next_event_counts_the_refusals_not_written(
    client: TestClient, db: Database, as_role: Callable[[str], dict[str, str]]
) -> None:
    # The daemon's window is a minute; the same rule with a second keeps the test short.
    runtime_of(client.app).refusals = RefusalLog(window_s=1.0)
    viewer = as_role("viewer")
    for _ in range(25):
        assert client.post("/nodes", json=node_body("x"), headers=viewer).status_code == 403
    [first] = refusals(db)
    first_written: dict[str, Any] = dict(first.details or {})
    time.sleep(1.1)
    assert client.put("/globals", json={"extra_vars": {}}, headers=viewer).status_code == 403
    older, newer = refusals(db)
    assert older.id == first.id
    assert older.details == first_written  # never edited
    assert newer.details is not None
    assert newer.details["refusals_not_recorded"] == 24
    assert newer.details["path"] == "/globals"
    assert "not_recorded_since" in newer.details
    assert "24 earlier refusals" in str(newer.note)
    # The count starts again: the next window's first refusal carries nothing.
    time.sleep(1.1)
    assert client.get("/globals", headers=viewer).status_code == 403
    assert refusals(db)[-1].details["refusals_not_recorded"] == 0  # type: ignore[index]


def test_the_refusal_log_is_bounded_whatever_the_number_of_tokens() -> None:
    log = RefusalLog(max_tokens=3)
    for i in range(100):
        assert log.admit(f"t{i}") is not None  # each token's first refusal is written
        assert log.admit(f"t{i}") is None
    assert len(log._windows) <= 3
    # The newest tokens are remembered: their next refusal in the window is only counted.
    assert log.admit("t99") is None


def test_a_viewer_cannot_push_the_history_out_of_the_timeline(settings: Settings) -> None:
    """The attack: at the smallest caps, more refused requests than the cap holds, with the
    retention thread purging all along. Nothing that happened before is lost."""
    small = settings.model_copy(
        update={
            "timeline_max_events": 1000,
            "timeline_max_audit_events": 1000,
            "timeline_purge_interval_s": 0.05,
        }
    )
    with TestClient(create_app(small)) as client:
        db: Database = runtime_of(client.app).db
        admin = {"Authorization": f"Bearer {small.admin_token_file.read_text().strip()}"}
        with db.write() as session:
            viewer = {"Authorization": "Bearer " + auth.create_token(
                session=session, name="viewer", role="viewer"
            )}  # fmt: skip
        assert client.post("/nodes", json=node_body("n1"), headers=admin).status_code == 201
        with db.read() as session:
            before = list(session.scalars(sa.select(TimelineEvent.id).order_by(TimelineEvent.id)))
        for _ in range(1100):
            assert client.delete("/nodes/n1", headers=viewer).status_code == 403
        time.sleep(0.5)  # several purge passes
        with db.read() as session:
            after = list(session.scalars(sa.select(TimelineEvent.id).order_by(TimelineEvent.id)))
        assert len(refusals(db)) == 1
    assert after[: len(before)] == before  # the bootstrap token and the node's registration
