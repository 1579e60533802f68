"""Recording: what an event holds, that it shares its change's transaction, and that ids come in
commit order however many writers there are."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from app.db import Database
from app.nodes import service as nodes
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate, NodeUpdate
from app.nodes.vocabulary import Event, State
from app.timeline import service as timeline
from app.timeline.filters import TimelineFilter
from app.timeline.models import TimelineEvent
from app.timeline.vocabulary import Result
from tests.timeline.conftest import write_events


def events(db: Database, **where: object) -> list[TimelineEvent]:
    query = sa.select(TimelineEvent).filter_by(**where).order_by(TimelineEvent.id)
    with db.read() as session:
        return list(session.scalars(query))


def test_note_is_cut_to_1_kib_keeping_head_and_tail() -> None:
    note = "HEAD " + "é" * 3000 + " TAIL"
    cut = timeline.cut_note(note)
    assert len(cut.encode()) <= 1024
    assert cut.startswith("HEAD ")
    assert cut.endswith(" TAIL")
    assert "middle cut" in cut
    assert timeline.cut_note("short") == "short"


@pytest.mark.parametrize(
    ("field", "value"),
    [("result", "ok"), ("severity", "loud"), ("reason", "not camel"), ("action", "Bad Action")],
)
def test_values_outside_the_vocabulary_are_a_bug_in_the_caller(
    store: Database, field: str, value: str
) -> None:
    fields = {"action": "test", "reason": "Tested", "result": "failed", field: value}
    with pytest.raises(ValueError, match=field), store.write() as session:
        timeline.record_event(session=session, **fields)  # type: ignore[arg-type]


def test_node_link_and_name_and_history_outlive_the_node(store: Database) -> None:
    with store.write() as session:
        [node] = nodes.register_nodes(
            session=session, nodes=[NodeCreate(name="n1", address="10.0.0.1")], actor="ops"
        )
        node_id = node.id
    with store.write() as session:  # by name: the link is resolved
        timeline.record_event(
            session=session, action="probe", reason="Probed", result=Result.SUCCEEDED, node="n1"
        )
        timeline.record_event(
            session=session, action="probe", reason="Probed", result=Result.FAILED, node="ghost"
        )
    linked = events(store, action="probe")
    assert [(e.node_name, e.node_id) for e in linked] == [("n1", node_id), ("ghost", None)]
    with store.write() as session:
        nodes.delete_node(session=session, name="n1", actor="ops")
    kept = events(store, node_name="n1")
    assert [e.action for e in kept] == ["register", "probe", "delete"]
    assert all(e.node_id is None for e in kept)  # ON DELETE SET NULL; the name stays
    assert kept[-1].actor == "ops"
    assert kept[-1].from_state == "registered"


def test_an_event_exists_exactly_when_its_change_does(store: Database) -> None:
    with store.write() as session:
        nodes.register_nodes(
            session=session, nodes=[NodeCreate(name="n1", address="10.0.0.1")], actor="ops"
        )
    before = len(events(store))

    def change_then_fail() -> None:
        with store.write() as session:
            nodes.update_node(
                session=session, name="n1", change=NodeUpdate(labels={"a": "b"}), actor="ops"
            )
            raise RuntimeError("the transaction fails after the change")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert len(events(store)) == before
    with store.read() as session:
        assert session.scalar(sa.select(Node.labels).where(Node.name == "n1")) == {}


def test_a_transition_is_recorded_by_its_caller_not_by_apply_event(store: Database) -> None:
    """apply_event only moves the node: the job that moves it records why (a maintenance job's
    MaintenanceOn, with from and to state: tests/jobs/test_maintenance.py)."""
    with store.write() as session:
        [node] = nodes.register_nodes(
            session=session, nodes=[NodeCreate(name="n1", address="10.0.0.1")], actor="ops"
        )
        node.state = State.COMMISSIONED
    with store.write() as session:
        node = nodes.get_node(session=session, name="n1")
        moves = [
            nodes.apply_event(session=session, node=node, event=event)
            for event in (Event.MAINTENANCE_ON, Event.MAINTENANCE_OFF)
        ]
    assert moves == [("commissioned", "maintenance"), ("maintenance", "commissioned")]
    assert events(store, action="maintenance") == []


def test_ids_follow_commit_order_under_concurrent_writers(store: Database) -> None:
    """A follower polling by cursor while 6 threads write must see every event: an id that
    became visible after a higher one would be skipped for good."""
    writers, rounds, per_tx = 6, 15, 3
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def follow() -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                with store.read() as session:
                    rows = timeline.events_after(
                        session=session, after_id=cursor, filters=TimelineFilter(), limit=1000
                    )
                for row in rows:
                    seen.append(row.id)
                    cursor = row.id
                if finished and not rows:
                    return
        except BaseException as exc:
            errors.append(exc)

    def write(worker: int) -> None:
        try:
            for r in range(rounds):
                write_events(store, per_tx, details={"worker": worker, "round": r})
        except BaseException as exc:
            errors.append(exc)

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    follower.join(30)
    assert errors == []
    stored = events(store, action="test")
    assert len(stored) == writers * rounds * per_tx
    assert [i for i in seen if i >= stored[0].id] == [e.id for e in stored]
    times = [e.occurred_at for e in stored]
    assert times == sorted(times)  # time never runs backwards along the ids
    for w in range(writers):  # each writer's events in the order it wrote them
        rounds_seen = [e.details["round"] for e in stored if e.details and e.details["worker"] == w]
        assert rounds_seen == sorted(rounds_seen)


def test_ids_are_never_reused_even_after_the_newest_event_is_deleted(store: Database) -> None:
    """Followers resume by id: an id handed out twice would be skipped by every one of them.
    (A migration that rebuilt the table on SQLite once lost AUTOINCREMENT this way.)"""
    ids = write_events(store, 3)
    with store.write() as session:
        session.execute(sa.delete(TimelineEvent).where(TimelineEvent.id == ids[-1]))
    [new] = write_events(store, 1)
    assert new > ids[-1]
