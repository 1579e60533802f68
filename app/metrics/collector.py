"""The cluster's metrics, read from the database at every scrape.

What describes the cluster (nodes by state, jobs by outcome, the active job, pending reverts) is
read here rather than counted in memory: every replica then reports the same values, and a
restart or a failover resets nothing. Each value is one small query through a domain's service,
grouped in SQL over small tables (nodes, verbosity levels); the timeline, which can hold
millions of events, is never read at scrape time. The job table only grows: the ended jobs'
totals are kept in memory by the app, and a scrape reads only the jobs that may still change
(app.jobs.stats); the first scrape after a start reads them all.

Every label combination is reported from the first scrape on, zeros included, so that
`increase()` sees the first failed job of a kind as an increase rather than as a new series.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from app import instruments
from app.db import Database
from app.drift import service as drift
from app.jobs import service as jobs
from app.jobs import stats as job_stats
from app.jobs.vocabulary import ACTIVE_STATUSES, Kind, Status
from app.nodes import service as nodes
from app.verbosity import service as verbosity

log = logging.getLogger("clusterm.metrics")

ENDED_STATUSES = tuple(s for s in Status if s not in ACTIVE_STATUSES)


class ClusterCollector(Collector):
    """The cluster-wide families, from `db()`: the database of the running runtime, and
    `ended_jobs`: the totals of its ended jobs, which the app keeps between scrapes."""

    def __init__(self, db: Callable[[], Database], ended_jobs: job_stats.EndedJobs) -> None:
        self._db = db
        self._ended_jobs = ended_jobs

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "clusterm_cluster_metrics_up",
            "1 when this scrape could read the cluster's metrics from the database, else 0 "
            "(the cluster's families are then left out; see this replica's log)",
        )
        try:
            with self._db().read() as session:
                families = list(_read(session, self._ended_jobs))
        except Exception as exc:
            # A scrape must still answer (the process's own metrics, and this 0) when the
            # database is busy or unreachable: that is when an operator looks.
            log.warning("could not read the cluster's metrics from the database: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _read(session: Session, ended_jobs: job_stats.EndedJobs) -> Iterator[Metric]:
    by_state = GaugeMetricFamily(
        "clusterm_nodes", "Nodes in the inventory, by lifecycle state", labels=["state"]
    )
    for state, count in nodes.count_by_state(session=session).items():
        by_state.add_metric([state.value], count)
    yield by_state
    yield GaugeMetricFamily(
        "clusterm_nodes_missing",
        "Commissioned nodes (or in maintenance) the last drift check did not find in the "
        "cluster's Node list",
        value=drift.count_missing(session=session),
    )

    checked_at = drift.last_check_at(session=session)
    if checked_at is not None:
        yield GaugeMetricFamily(
            "clusterm_drift_last_check_timestamp_seconds",
            "When the last drift check ended (Unix time), whatever it found; absent before the "
            "first",
            value=checked_at.timestamp(),
        )

    ended = ended_jobs.read(session=session)
    jobs_total = CounterMetricFamily(
        "clusterm_jobs", "Jobs that have ended, by kind and final status", labels=["kind", "status"]
    )
    for kind in Kind:
        for status in ENDED_STATUSES:
            jobs_total.add_metric([kind.value, status.value], ended.counts.get((kind, status), 0))
    yield jobs_total

    histogram = HistogramMetricFamily(
        "clusterm_job_duration_seconds",
        "How long ended jobs ran, from start to end, by kind",
        labels=["kind"],
    )
    for kind in Kind:
        took = ended.durations.get(kind, job_stats.Durations())
        buckets = [
            (str(bound), n)
            for bound, n in zip(job_stats.DURATION_BUCKETS, took.at_most, strict=True)
        ]
        histogram.add_metric([kind.value], [*buckets, ("+Inf", took.count)], sum_value=took.sum_s)
    yield histogram

    active = jobs.active_job(session=session)
    job_active = GaugeMetricFamily(
        "clusterm_job_active",
        "1 for the kind and status of the job that holds the active slot (queued or running), "
        "0 for the others",
        labels=["kind", "status"],
    )
    for kind in Kind:
        for status in sorted(ACTIVE_STATUSES):
            on = active is not None and active.kind == kind and active.status == status
            job_active.add_metric([kind.value, status.value], 1 if on else 0)
    yield job_active
    if active is not None and active.started_at is not None:
        yield GaugeMetricFamily(
            "clusterm_job_active_started_timestamp_seconds",
            "When the running job started (Unix time); absent while no job runs",
            value=active.started_at.timestamp(),
        )

    yield GaugeMetricFamily(
        "clusterm_verbosity_reverts_pending",
        "Automatic verbosity reverts clusterm owes (due or not yet due)",
        value=verbosity.count_pending_reverts(session=session),
    )


class _Process(Collector):
    """This process's instruments, forwarded: registered on every app's registry, they are
    never registered twice on the one registry that holds them."""

    def collect(self) -> Iterator[Metric]:
        yield from instruments.REGISTRY.collect()


def metrics_registry(
    db: Callable[[], Database], ended_jobs: job_stats.EndedJobs
) -> CollectorRegistry:
    """What a scrape reports: this process's instruments and the cluster read from `db()`
    (with the totals of its ended jobs the app keeps in `ended_jobs`).

    auto_describe off: registering never scrapes, and the two never share a name."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Process())
    registry.register(ClusterCollector(db, ended_jobs))
    return registry


Encoder = Callable[[CollectorRegistry], bytes]


def choose_format(accept: str | None) -> tuple[Encoder, str]:
    """The format a scraper's Accept header asks for: Prometheus' text format unless it asks
    for OpenMetrics, as prometheus_client chooses. That choice fails on a version it cannot read
    as numbers (`version=1.x`): such a header gets the text format, as any other unknown one."""
    try:
        return choose_encoder(accept or "")
    except (TypeError, ValueError):
        return generate_latest, CONTENT_TYPE_PLAIN_0_0_4
