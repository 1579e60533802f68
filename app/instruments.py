"""What this process did, counted for Prometheus (`GET /metrics`, see docs/metrics.md).

The instruments here describe one process: the HTTP requests it answered, the job log lines its
log writer handled, the timeline events and verbosity changes it recorded, the tokens it refused.
Every layer may count on them (this module imports nothing of the app). What describes the
cluster (nodes by state, jobs by outcome) is not counted here but read from the database at
scrape time (`app.metrics.collector`), so that every replica reports the same.

They live on this module's own registry, not on prometheus_client's global one: the app then
never exports what an imported library registered there, and tests that build several apps in
one process share one set of per-process instruments without registering anything twice.

Every label value comes from a closed set (a route template, a fixed refusal reason, a timeline
action the code names): a client must never be able to create a new time series.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

# No `_created` series beside every counter: Prometheus does not need them in the text format,
# and they would double the series a scrape carries. (The library leaves this toggle untyped.)
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)
# The standard process_* and python_* series (memory, CPU, open files), as every exporter has.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# --- HTTP --------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "clusterm_http_requests",
    "HTTP requests answered by this replica, by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
# From 5 ms (a cached read) to a minute (a support bundle); a stream counts its whole life.
HTTP_DURATION = Histogram(
    "clusterm_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
# The route label of a request no route matched (an unknown path, a body refused before routing).
UNMATCHED = "unmatched"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"

# --- job logs ----------------------------------------------------------------------------------

LOG_LINES = Counter(
    "clusterm_job_log_lines",
    "Job log lines this replica's job runner took from playbooks",
    registry=REGISTRY,
)
LOG_BYTES = Counter(
    "clusterm_job_log_bytes",
    "Bytes of job log lines (UTF-8, newline included) this replica's job runner took",
    registry=REGISTRY,
)
LOG_DROPPED_LINES = Counter(
    "clusterm_job_log_dropped_lines",
    "Job log lines dropped from a log's sliding tail to keep it within job_log_cap_bytes",
    registry=REGISTRY,
)

# --- timeline, verbosity, tokens ---------------------------------------------------------------

TIMELINE_EVENTS = Counter(
    "clusterm_timeline_events",
    "Timeline events this replica wrote, by action",
    ["action"],
    registry=REGISTRY,
)
VERBOSITY_CHANGES = Counter(
    "clusterm_verbosity_changes",
    "Level changes this replica sent to components (changes, resets and reverts), by component "
    "and result",
    ["component", "result"],
    registry=REGISTRY,
)


class Refusal(StrEnum):
    """Why a request's token was refused: the `reason` label of clusterm_token_refusals_total."""

    MISSING = "missing"  # no Authorization header
    MALFORMED = "malformed"  # not `Bearer <token>`
    UNKNOWN = "unknown"  # no such token: never made, or revoked (a revoked token is deleted)
    EXPIRED = "expired"
    FORBIDDEN = "forbidden"  # a known token whose role is too low (403)


TOKEN_REFUSALS = Counter(
    "clusterm_token_refusals",
    "Requests this replica refused for their token, by reason",
    ["reason"],
    registry=REGISTRY,
)
for _reason in Refusal:  # every reason from the first scrape on, zeros included
    TOKEN_REFUSALS.labels(_reason.value)


def count_refusal(reason: Refusal) -> None:
    TOKEN_REFUSALS.labels(reason.value).inc()
