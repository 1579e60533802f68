"""The one rule for the masters: in the cluster (commissioned, updating, maintenance), oldest
commission first. Jobs (whom a worker joins), the drift watch (where kubectl runs) and the
verbosity relay all take the first of them."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from app.db import Database
from app.jobs import service as jobs
from app.jobs.vocabulary import Kind
from app.nodes import service as nodes
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate
from app.nodes.vocabulary import Event, HostGroup, State

COMMISSION = (Event.COMMISSION_START, Event.COMMISSION_SUCCEED)


def register(db: Database, *names: str, group: HostGroup = HostGroup.MASTER) -> None:
    with db.write() as session:
        nodes.register_nodes(
            session=session,
            nodes=[NodeCreate(name=n, address="127.0.0.1", host_group=group) for n in names],
            actor="test",
        )


def move(db: Database, name: str, *events: Event) -> None:
    """Each event in its own transaction, as jobs and the maintenance route apply them."""
    for event in events:
        with db.write() as session:
            node = nodes.get_node(session=session, name=name)
            nodes.apply_event(session=session, node=node, event=event)


def commissioned_at(db: Database, name: str) -> dt.datetime | None:
    with db.read() as session:
        return nodes.get_node(session=session, name=name).commissioned_at


def master_names(db: Database) -> list[str]:
    with db.read() as session:
        return [n.name for n in nodes.cluster_masters(session=session)]


def test_the_first_master_is_the_oldest_commissioned_not_the_first_by_name_or_age(
    db: Database,
) -> None:
    register(db, "m-a", "m-b", "m-c")  # m-a registered first, and first by name
    register(db, "w1", group=HostGroup.WORKER)
    move(db, "w1", *COMMISSION)
    move(db, "m-c", *COMMISSION)
    move(db, "m-b", *COMMISSION)
    assert master_names(db) == ["m-c", "m-b"]  # m-a is registered: not in the cluster
    move(db, "m-a", *COMMISSION)
    assert master_names(db) == ["m-c", "m-b", "m-a"]
    with db.read() as session:
        first = nodes.first_master(session=session)
        assert first is not None
        assert first.name == "m-c"


def test_updating_and_maintenance_masters_stay_in_place(db: Database) -> None:
    register(db, "m1", "m2")
    move(db, "m1", *COMMISSION)
    move(db, "m2", *COMMISSION)
    since = commissioned_at(db, "m1")
    assert since is not None
    move(db, "m1", Event.MAINTENANCE_ON)
    assert master_names(db) == ["m1", "m2"]
    move(db, "m1", Event.MAINTENANCE_OFF, Event.UPDATE_START)
    assert master_names(db) == ["m1", "m2"]
    move(db, "m1", Event.UPDATE_SUCCEED)
    assert master_names(db) == ["m1", "m2"]
    assert commissioned_at(db, "m1") == since


@pytest.mark.parametrize(
    "leave",
    [
        (Event.DECOMMISSION_START,),
        (Event.DECOMMISSION_START, Event.DECOMMISSION_SUCCEED),
        (Event.UPDATE_START, Event.UPDATE_FAIL),
    ],
    ids=["decommissioning", "decommissioned", "failed-update"],
)
def test_a_master_that_leaves_and_comes_back_is_the_newest(
    db: Database, leave: tuple[Event, ...]
) -> None:
    register(db, "m1", "m2")
    move(db, "m1", *COMMISSION)
    move(db, "m2", *COMMISSION)
    move(db, "m1", *leave)
    assert commissioned_at(db, "m1") is None
    assert master_names(db) == ["m2"]
    if leave[-1] == Event.DECOMMISSION_START:
        move(db, "m1", Event.DECOMMISSION_SUCCEED)
    move(db, "m1", *COMMISSION)
    assert master_names(db) == ["m2", "m1"]


def test_masters_without_a_recorded_commission_come_last(db: Database) -> None:
    """Set straight in the table (as before clusterm recorded the time): after the others."""
    register(db, "m1", "m2", "m3")
    with db.write() as session:
        session.execute(
            sa.update(Node).where(Node.name.in_(["m1", "m2"])).values(state=State.COMMISSIONED)
        )
    move(db, "m3", *COMMISSION)
    assert master_names(db) == ["m3", "m1", "m2"]


def test_a_job_inventory_lists_the_masters_by_the_rule(db: Database) -> None:
    """The first of the job's cluster masters is the playbooks' `clusterm_first_master`."""
    register(db, "m-a", "m-b")
    register(db, "w1", group=HostGroup.WORKER)
    move(db, "m-b", *COMMISSION)
    move(db, "m-a", *COMMISSION)
    with db.write() as session:
        jobs.accept_job(
            session=session,
            kind=Kind.COMMISSION,
            names=["w1"],
            host_group=None,
            actor="test",
        )
        claimed = jobs.claim_next_job(session=session, leader="test", epoch=1)
        assert claimed is not None
        _, targets = claimed
        assert [n.name for n in targets.cluster_masters] == ["m-b", "m-a"]
        assert [n.name for n in targets.nodes] == ["w1"]
