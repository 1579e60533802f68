"""The closed sets a job's fields come from: what it does and where it is in its run.

Other domains import these from here (not from `models`). The stored form of each member is its
value, the same string the API shows.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    COMMISSION = "commission"
    DECOMMISSION = "decommission"
    UPDATE = "update"
    DISCOVER = "discover"
    CLEANUP = "cleanup"  # the cleanup playbook on failed nodes, asked for by an operator
    MAINTENANCE = "maintenance"  # cordon (and drain) or uncordon one node, asked for by a user


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


# A job in one of these holds the one active slot (see `models.Job.active_slot`).
ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.RUNNING})


class FailureReason(StrEnum):
    """Why a host of a job failed: `details.reason` of its HostFailed event on the timeline."""

    TASK_FAILED = "TaskFailed"
    UNREACHABLE = "Unreachable"
    JOIN_FAILED = "JoinFailed"
    NODE_VANISHED_AFTER_JOIN = "NodeVanishedAfterJoin"
    NODE_NAME_MISMATCH = "NodeNameMismatch"
    CANCELED = "Canceled"
    TIMED_OUT = "TimedOut"
    INTERRUPTED = "Interrupted"
