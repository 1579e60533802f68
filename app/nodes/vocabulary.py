"""The closed sets of the node domain: a node's lifecycle state and host group, and the events
that move it from state to state.

Other domains import these from here (not from `models` or `lifecycle`): they are the words the
domains share. The stored form of each member is its value, the same string the API shows.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a node is in its lifecycle; only jobs (maintenance is one) move it."""

    REGISTERED = "registered"
    PROVISIONING = "provisioning"
    COMMISSIONED = "commissioned"
    UPDATING = "updating"
    DECOMMISSIONING = "decommissioning"
    DECOMMISSIONED = "decommissioned"
    CLEANING = "cleaning"
    MAINTENANCE = "maintenance"
    FAILED = "failed"


class Event(StrEnum):
    """What moves a node from one state to the next (`lifecycle.TRANSITIONS`): jobs drive the
    *_start/_succeed/_fail events, the *_untouched ones (a rolling job that stopped before the
    node's batch) and, for a user's maintenance job, the maintenance pair."""

    COMMISSION_START = "commission_start"
    COMMISSION_SUCCEED = "commission_succeed"
    COMMISSION_FAIL = "commission_fail"
    UPDATE_START = "update_start"
    UPDATE_SUCCEED = "update_succeed"
    UPDATE_FAIL = "update_fail"
    UPDATE_UNTOUCHED = "update_untouched"
    DECOMMISSION_START = "decommission_start"
    DECOMMISSION_SUCCEED = "decommission_succeed"
    DECOMMISSION_FAIL = "decommission_fail"
    DECOMMISSION_UNTOUCHED = "decommission_untouched"
    # A failed node the decommission never reached goes back to failed, not to the cluster.
    DECOMMISSION_UNTOUCHED_FAILED = "decommission_untouched_failed"
    CLEANUP_START = "cleanup_start"
    CLEANUP_SUCCEED = "cleanup_succeed"
    CLEANUP_FAIL = "cleanup_fail"
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"


class HostGroup(StrEnum):
    """A node's role in the cluster: a master runs the control plane, a worker joins it."""

    MASTER = "master"
    WORKER = "worker"
