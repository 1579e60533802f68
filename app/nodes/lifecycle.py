"""The node lifecycle state machine: every legal (state, event) pair, and nothing else.

    registered ──commission_start──▶ provisioning ──commission_succeed──▶ commissioned
    decommissioned, failed ──commission_start──▶ provisioning ──commission_fail──▶ failed
    commissioned ──update_start──▶ updating ──update_succeed──▶ commissioned
                                            ├──update_untouched──▶ commissioned
                                            └──update_fail──▶ failed
    commissioned, failed ──decommission_start──▶ decommissioning
    decommissioning ──decommission_succeed──▶ decommissioned
                    ├──decommission_untouched──▶ commissioned
                    ├──decommission_untouched_failed──▶ failed
                    └──decommission_fail──▶ failed
    failed ──cleanup_start──▶ cleaning ──cleanup_succeed──▶ registered
                                       └──cleanup_fail──▶ failed
    commissioned ◀──maintenance_on / maintenance_off──▶ maintenance

A cleanup (the cleanup playbook on failed nodes, asked for by an operator) removes what a
half-done job left and resets the node: a node it cleaned is as good as a registered one.
Jobs drive the *_start/_succeed/_fail events. An update or a decommission rolls out in batches
and stops after a batch that failed: the nodes of the batches it never reached are untouched and
go back to the state they had before the job (*_untouched; a failed node a decommission never
reached is failed still). The maintenance pair is a maintenance job's (the user's request to
cordon, or drain, and uncordon a node), applied when the job succeeds: the node stays where it
was while the job runs and when it fails.
The table is the single source of truth: the API, the jobs and the tests all read it.
"""

from __future__ import annotations

from app.nodes.vocabulary import Event, State

S, E = State, Event

TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.REGISTERED, E.COMMISSION_START): S.PROVISIONING,
    (S.DECOMMISSIONED, E.COMMISSION_START): S.PROVISIONING,
    (S.FAILED, E.COMMISSION_START): S.PROVISIONING,
    (S.PROVISIONING, E.COMMISSION_SUCCEED): S.COMMISSIONED,
    (S.PROVISIONING, E.COMMISSION_FAIL): S.FAILED,
    (S.COMMISSIONED, E.UPDATE_START): S.UPDATING,
    (S.UPDATING, E.UPDATE_SUCCEED): S.COMMISSIONED,
    (S.UPDATING, E.UPDATE_FAIL): S.FAILED,
    (S.UPDATING, E.UPDATE_UNTOUCHED): S.COMMISSIONED,
    (S.COMMISSIONED, E.DECOMMISSION_START): S.DECOMMISSIONING,
    (S.FAILED, E.DECOMMISSION_START): S.DECOMMISSIONING,
    (S.DECOMMISSIONING, E.DECOMMISSION_SUCCEED): S.DECOMMISSIONED,
    (S.DECOMMISSIONING, E.DECOMMISSION_FAIL): S.FAILED,
    (S.DECOMMISSIONING, E.DECOMMISSION_UNTOUCHED): S.COMMISSIONED,
    (S.DECOMMISSIONING, E.DECOMMISSION_UNTOUCHED_FAILED): S.FAILED,
    (S.FAILED, E.CLEANUP_START): S.CLEANING,
    (S.CLEANING, E.CLEANUP_SUCCEED): S.REGISTERED,
    (S.CLEANING, E.CLEANUP_FAIL): S.FAILED,
    (S.COMMISSIONED, E.MAINTENANCE_ON): S.MAINTENANCE,
    (S.MAINTENANCE, E.MAINTENANCE_OFF): S.COMMISSIONED,
}

# A node a rolling job never reached (its batch never ran): the event that takes it back to the
# state it had before the job, by (the job's start event, that state). Each leads back there.
UNTOUCHED: dict[tuple[Event, State], Event] = {
    (E.UPDATE_START, S.COMMISSIONED): E.UPDATE_UNTOUCHED,
    (E.DECOMMISSION_START, S.COMMISSIONED): E.DECOMMISSION_UNTOUCHED,
    (E.DECOMMISSION_START, S.FAILED): E.DECOMMISSION_UNTOUCHED_FAILED,
}

# States in which the node is part of the cluster or of a running job: it cannot be deleted.
PROTECTED_STATES = frozenset(
    {S.PROVISIONING, S.COMMISSIONED, S.UPDATING, S.DECOMMISSIONING, S.MAINTENANCE, S.CLEANING}
)


class TransitionRefused(Exception):
    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"{event} is not allowed from {state}")
        self.state = state
        self.event = event
        self.allowed = allowed_events(state)


def allowed_events(state: State) -> list[str]:
    return [str(e) for (s, e) in TRANSITIONS if s == state]


def next_state(state: State | str, event: Event | str) -> State:
    """The state after `event`; raise TransitionRefused when the table has no such edge."""
    state, event = State(state), Event(event)
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionRefused(state, event) from None
