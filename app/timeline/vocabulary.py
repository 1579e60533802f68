"""The closed sets an event's `result` and `severity` come from, and how severities rank."""

from __future__ import annotations

import re
from enum import StrEnum


class Result(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"


class Severity(StrEnum):
    # Declared lowest first: `min_severity` keeps a severity and everything after it. `audit` (a
    # refused request, a token made or revoked) ranks above `info` so that a reader asking for
    # "more than routine" sees who was refused, and below `warning`, which is about the cluster.
    DEBUG = "debug"
    INFO = "info"
    AUDIT = "audit"
    WARNING = "warning"
    ERROR = "error"

    @classmethod
    def at_least(cls, minimum: Severity) -> list[Severity]:
        order = list(cls)
        return order[order.index(minimum) :]


# Machine-readable: a lowercase verb for the action, CamelCase for the reason (as Kubernetes'
# event reasons), so tools can match on them without parsing prose.
ACTION_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
REASON_RE = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
FAILED_RESULTS = frozenset({Result.FAILED, Result.INTERRUPTED})


# The audit trail: who was let in or refused, and what they asked the daemon to do. Retention caps
# these events on their own (`timeline_max_audit_events`), so that a flood of refused requests
# cannot push job history out, nor a busy cluster the record of who did what. Migration 0006
# classified the rows stored before it with the same rule, less `CancelRequested`, which it left
# as ordinary events. docs/timeline.md lists them for readers.
AUDIT_ACTIONS = frozenset({"token", "authorize", "verbosity", "globals.set"})
# The audit events a role below admin can write without limit (every verbosity change and
# revert is one): retention removes them first when the audit trail is over its cap.
FLOODABLE_AUDIT_ACTION = "verbosity"
AUDIT_REASONS = frozenset({"JobAccepted", "CancelRequested"})


def is_audit(action: str, reason: str, severity: Severity) -> bool:
    return severity == Severity.AUDIT or action in AUDIT_ACTIONS or reason in AUDIT_REASONS
