"""Which events are the audit trail: one rule, applied when an event is recorded, the same rule the
migration applied to the events stored before it, and a filter to read them by."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db import Database, upgrade, utcnow
from app.timeline.models import TimelineEvent
from app.timeline.vocabulary import is_audit
from tests.conftest import node_body
from tests.timeline.conftest import write_events

# (action, reason, severity): one of each kind of event clusterm writes, and whether it is audit.
KINDS = [
    ("token", "TokenCreated", "audit", True),
    ("token", "TokenRevoked", "audit", True),
    ("authorize", "Forbidden", "audit", True),
    ("commission", "JobAccepted", "info", True),
    ("discover", "JobAccepted", "info", True),
    ("commission", "CancelRequested", "info", True),
    ("globals.set", "GlobalsChanged", "audit", True),
    ("verbosity", "VerbositySet", "audit", True),
    ("verbosity", "VerbosityReverted", "warning", True),
    ("verbosity", "VerbosityReset", "info", True),
    ("anything", "SomethingAudited", "audit", True),
    ("commission", "JobStarted", "info", False),
    ("commission", "StateChanged", "info", False),
    ("commission", "HostFailed", "error", False),
    ("register", "NodeRegistered", "info", False),
    ("drift", "NodeMissing", "warning", False),
]


def test_each_kind_of_event_is_classified_when_recorded(store: Database) -> None:
    for action, reason, severity, audit in KINDS:
        [event_id] = write_events(store, 1, action=action, reason=reason, severity=severity)
        with store.read() as session:
            stored = session.scalar(
                sa.select(TimelineEvent.audit).where(TimelineEvent.id == event_id)
            )
        assert stored is audit, (action, reason, severity)


def test_the_migration_classified_old_events_by_the_same_rule(db_url: str) -> None:
    upgrade(db_url, "0005")
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        for action, reason, severity, _ in KINDS:
            conn.execute(
                sa.text(
                    "INSERT INTO timeline_event (occurred_at, action, reason, result, severity) "
                    "VALUES (:at, :action, :reason, 'succeeded', :severity)"
                ),
                {"at": utcnow().replace(tzinfo=None), "action": action, "reason": reason,
                 "severity": severity},
            )  # fmt: skip
    upgrade(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, reason, severity, audit FROM timeline_event"))
        migrated = {(r.action, r.reason, r.severity): bool(r.audit) for r in rows}
    engine.dispose()
    for (action, reason, severity), audit in migrated.items():
        # Cancels joined the audit trail after the migration: old ones stay ordinary events.
        expected = is_audit(action, reason, severity) and reason != "CancelRequested"
        assert audit is expected, (action, reason, severity)
    assert len(migrated) == len(KINDS)


def test_the_api_shows_and_filters_the_audit_trail(
    admin: TestClient, as_role: Callable[[str], dict[str, str]]
) -> None:
    assert admin.post("/nodes", json=node_body("n1")).status_code == 201
    assert admin.delete("/nodes/n1", headers=as_role("viewer")).status_code == 403
    trail = admin.get("/info/timeline", params={"audit": "true"}).json()["items"]
    assert [(e["action"], e["reason"]) for e in trail] == [
        ("authorize", "Forbidden"),
        ("token", "TokenCreated"),  # the bootstrap admin token
    ]
    assert all(e["audit"] for e in trail)
    rest = admin.get("/info/timeline", params={"audit": "false"}).json()["items"]
    assert [(e["action"], e["audit"]) for e in rest] == [("register", False)]
    history = admin.get("/info/node/n1/history", params={"audit": "true"}).json()
    assert history["items"] == []
    r = admin.get("/info/timeline", params={"audit": "maybe"})
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "audit"
    text = admin.get("/info/timeline", params={"audit": "true", "format": "text"}).text
    assert "authorize failed reason=Forbidden severity=audit" in text
