"""Closed vocabularies in the database: members in Python, their values on disk, nothing else.

The stored strings are the ones every earlier version wrote, so a database made before the columns
were enums reads back unchanged, and one written now is still readable by plain SQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from app.auth import service as auth
from app.auth.models import Token
from app.auth.vocabulary import Role
from app.db import Database, upgrade
from app.jobs.models import Job
from app.jobs.vocabulary import Kind, Status
from app.nodes import service as nodes
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate
from app.nodes.vocabulary import HostGroup, State
from app.timeline import service as timeline
from app.timeline.models import TimelineEvent
from app.timeline.vocabulary import Result, Severity


@pytest.fixture
def store(db_url: str) -> Iterator[Database]:
    upgrade(db_url)
    database = timeline.attach(Database(db_url))
    yield database
    database.dispose()


def _register(store: Database, name: str, group: HostGroup) -> None:
    with store.write() as session:
        nodes.register_nodes(
            session=session,
            nodes=[NodeCreate(name=name, address="10.0.0.1", host_group=group)],
            actor="ops",
        )


def test_members_are_stored_as_their_values_and_read_back_as_members(store: Database) -> None:
    _register(store, "m1", HostGroup.MASTER)
    with store.write() as session:
        session.add(Job(kind=Kind.COMMISSION, desc="d", nodes=["m1"], host_group=None, actor="ops"))
        auth.create_token(session=session, name="ci", role=Role.OPERATOR)

    with store.read() as session:
        raw = session.execute(
            sa.text(
                "SELECT n.state, n.host_group, j.kind, j.status, t.role, e.result, e.severity "
                "FROM node n, job j, token t, timeline_event e "
                "WHERE n.name = 'm1' AND t.name = 'ci' AND e.action = 'register'"
            )
        ).one()
        node = session.scalars(sa.select(Node)).one()
        job = session.scalars(sa.select(Job)).one()
        token = session.scalars(sa.select(Token).where(Token.name == "ci")).one()
        event = session.scalars(sa.select(TimelineEvent)).one()

    # Exactly the strings earlier versions stored (and the API shows): no migration needed.
    assert tuple(raw) == (
        "registered", "master", "commission", "queued", "operator", "succeeded", "info"
    )  # fmt: skip
    assert all(type(value) is str for value in raw)
    assert (type(node.state), type(node.host_group)) == (State, HostGroup)
    assert (type(job.kind), type(job.status), job.host_group) == (Kind, Status, None)
    assert type(token.role) is Role
    assert (type(event.result), type(event.severity)) == (Result, Severity)
    assert (node.state, event.result) == (State.REGISTERED, Result.SUCCEEDED)


def test_queries_compare_members_with_the_stored_values(store: Database) -> None:
    _register(store, "m1", HostGroup.MASTER)
    _register(store, "w1", HostGroup.WORKER)
    with store.read() as session:
        masters = session.scalars(sa.select(Node.name).where(Node.host_group == HostGroup.MASTER))
        assert list(masters) == ["m1"]
        registered = nodes.list_nodes(session=session, state=State.REGISTERED)
        assert [n.name for n in registered] == ["m1", "w1"]
        assert nodes.list_nodes(session=session, state=State.COMMISSIONED) == []


def test_a_string_outside_the_vocabulary_never_reaches_the_database(store: Database) -> None:
    _register(store, "m1", HostGroup.MASTER)
    with store.write() as session:
        node = session.scalars(sa.select(Node)).one()
        node.state = "retired"  # type: ignore[assignment]
        with pytest.raises(sa.exc.StatementError, match="retired") as caught:
            session.flush()
        session.rollback()
    assert isinstance(caught.value.orig, LookupError)
    with store.read() as session:
        assert session.scalar(sa.text("SELECT state FROM node")) == "registered"


def test_a_stored_value_outside_the_vocabulary_fails_the_read_loudly(store: Database) -> None:
    # Only a hand-edited database (or one a newer version wrote) holds such a value: a state
    # the state machine does not know cannot be acted on, so the read fails instead of guessing.
    _register(store, "m1", HostGroup.MASTER)
    with store.write() as session:
        session.execute(sa.text("UPDATE node SET state = 'retired'"))
    with pytest.raises(LookupError, match="retired"), store.read() as session:
        session.scalars(sa.select(Node)).one()
