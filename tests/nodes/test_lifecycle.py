"""The state machine over every (state, event) pair, against the lifecycle table written here."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from app.db import Database
from app.errors import IllegalTransition
from app.nodes import service
from app.nodes.lifecycle import PROTECTED_STATES, TRANSITIONS, UNTOUCHED, next_state
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate
from app.nodes.vocabulary import Event, State

# The lifecycle written out by hand, independently of the module's table: a change to either must
# be made to both, on purpose.
EXPECTED = {
    ("registered", "commission_start"): "provisioning",
    ("provisioning", "commission_succeed"): "commissioned",
    ("provisioning", "commission_fail"): "failed",
    ("commissioned", "update_start"): "updating",
    ("updating", "update_succeed"): "commissioned",
    ("updating", "update_fail"): "failed",
    ("updating", "update_untouched"): "commissioned",
    ("commissioned", "decommission_start"): "decommissioning",
    ("failed", "decommission_start"): "decommissioning",
    ("decommissioning", "decommission_succeed"): "decommissioned",
    ("decommissioning", "decommission_fail"): "failed",
    ("decommissioning", "decommission_untouched"): "commissioned",
    ("decommissioning", "decommission_untouched_failed"): "failed",
    ("failed", "cleanup_start"): "cleaning",
    ("cleaning", "cleanup_succeed"): "registered",
    ("cleaning", "cleanup_fail"): "failed",
    ("decommissioned", "commission_start"): "provisioning",
    ("failed", "commission_start"): "provisioning",
    ("commissioned", "maintenance_on"): "maintenance",
    ("maintenance", "maintenance_off"): "commissioned",
}

PAIRS = list(itertools.product(State, Event))


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_pair(state: State, event: Event) -> None:
    expected = EXPECTED.get((state.value, event.value))
    if expected is None:
        with pytest.raises(Exception, match=f"{event} is not allowed from {state}"):
            next_state(state, event)
    else:
        assert next_state(state, event) == State(expected)


def test_table_has_nothing_beyond_the_written_lifecycle() -> None:
    assert {(s.value, e.value): t.value for (s, e), t in TRANSITIONS.items()} == EXPECTED


def test_an_untouched_node_goes_back_to_its_state_before_the_job() -> None:
    """lifecycle.UNTOUCHED: from each state a rolling job starts from, its start event, then the
    untouched event, lead back to that state; and every state a job starts from has one."""
    assert {(e.value, s.value): u.value for (e, s), u in UNTOUCHED.items()} == {
        ("update_start", "commissioned"): "update_untouched",
        ("decommission_start", "commissioned"): "decommission_untouched",
        ("decommission_start", "failed"): "decommission_untouched_failed",
    }
    for (start, before), untouched in UNTOUCHED.items():
        assert next_state(next_state(before, start), untouched) == before
    starts = {
        (s, e) for (s, e) in TRANSITIONS if e in (Event.UPDATE_START, Event.DECOMMISSION_START)
    }
    assert {(s, e) for (e, s) in UNTOUCHED} == starts


def test_every_state_is_reachable_from_registered() -> None:
    seen, frontier = {State.REGISTERED}, [State.REGISTERED]
    while frontier:
        state = frontier.pop()
        for (s, _), target in TRANSITIONS.items():
            if s == state and target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(State)


def test_protected_states_are_those_in_the_cluster_or_in_a_job() -> None:
    assert {s.value for s in PROTECTED_STATES} == {
        "provisioning",
        "commissioned",
        "updating",
        "decommissioning",
        "maintenance",
        "cleaning",
    }


def test_refused_event_through_the_service_names_node_state_and_transition(db: Database) -> None:
    with db.write() as session:
        service.register_nodes(
            session=session, nodes=[NodeCreate(name="n1", address="127.0.0.1")], actor="test"
        )
    with db.write() as session:
        node = service.get_node(session=session, name="n1")
        with pytest.raises(IllegalTransition) as err:
            service.apply_event(session=session, node=node, event=Event.UPDATE_START)
    assert err.value.status_code == 409
    assert err.value.details == {
        "node": "n1",
        "state": "registered",
        "transition": "update_start",
    }
    with db.read() as session:
        assert session.scalar(sa.select(Node.state).where(Node.name == "n1")) == "registered"
