"""The cluster's values come from the database at scrape time: two replicas report the same, the
job durations are bucketed in SQL the same way on SQLite and PostgreSQL, and a database that
cannot be read leaves a scrape that still answers and says so."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from app.config import load_settings
from app.db import Database
from app.drift.models import DriftCheck
from app.jobs.models import Job
from app.jobs.stats import EndedJobs
from app.jobs.vocabulary import Kind, Status
from app.main import create_app
from app.metrics.collector import ClusterCollector
from app.nodes.models import Node
from app.nodes.vocabulary import State
from app.runtime import runtime_of
from tests.conftest import node_body
from tests.metrics.conftest import Samples, by_label, parse, scrape, value


def test_two_replicas_on_one_database_report_the_same_cluster(tmp_path: Path, db_url: str) -> None:
    def replica(name: str) -> TestClient:
        settings = load_settings(
            data_dir=tmp_path / name,
            database_url=db_url,
            replica_id=name,
            admin_token_file=tmp_path / "admin.token",
            lease_ttl_s=15.0,
        )
        return TestClient(create_app(settings))

    with replica("one") as one, replica("two") as two:
        token = (tmp_path / "admin.token").read_text().strip()
        for client in (one, two):
            client.headers["Authorization"] = f"Bearer {token}"
        body = [node_body(f"n{i}") for i in range(5)]
        assert one.post("/nodes", json=body).status_code == 201
        assert two.delete("/nodes/n4").status_code == 204
        with runtime_of(two.app).db.write() as session:
            # As a failed job leaves a node (the jobs that get it there need real hosts).
            session.execute(sa.update(Node).where(Node.name == "n3").values(state=State.FAILED))
        seen = [by_label(scrape(client), "clusterm_nodes", "state") for client in (one, two)]
    assert seen[0] == seen[1]
    assert seen[0]["registered"] == 3
    assert seen[0]["failed"] == 1
    assert sum(seen[0].values()) == 4


START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def add_job(db: Database, kind: Kind, status: Status, took_s: float | None, **extra: Any) -> None:
    with db.write() as session:
        session.add(
            Job(
                kind=kind,
                desc="test",
                nodes=[],
                actor="test",
                status=status,
                **(
                    {}
                    if took_s is None
                    else {"started_at": START, "finished_at": START + dt.timedelta(seconds=took_s)}
                ),
                **extra,
            )
        )


def test_ended_jobs_by_kind_and_status_and_their_durations(
    client: TestClient, db: Database
) -> None:
    add_job(db, Kind.COMMISSION, Status.SUCCESSFUL, 5.5)
    add_job(db, Kind.COMMISSION, Status.FAILED, 45.25)
    add_job(db, Kind.COMMISSION, Status.CANCELED, None)  # canceled while queued: never ran
    add_job(db, Kind.UPDATE, Status.TIMEOUT, 4000.0)
    running = {"active_slot": 1, "started_at": START}
    add_job(db, Kind.DISCOVER, Status.RUNNING, None, **running)
    samples = parse(generate_latest(ClusterCollector(lambda: db, EndedJobs())).decode())

    jobs = {(k["kind"], k["status"]): v for k, v in samples["clusterm_jobs_total"] if v}
    assert jobs == {
        ("commission", "successful"): 1,
        ("commission", "failed"): 1,
        ("commission", "canceled"): 1,
        ("update", "timeout"): 1,
    }
    commission = by_label(samples, "clusterm_job_duration_seconds_bucket", "le", kind="commission")
    assert (commission["10.0"], commission["30.0"], commission["60.0"]) == (1, 1, 2)
    assert commission["+Inf"] == 2
    duration_sum = value(samples, "clusterm_job_duration_seconds_sum", kind="commission")
    assert duration_sum == pytest.approx(50.75, abs=0.01)
    update = by_label(samples, "clusterm_job_duration_seconds_bucket", "le", kind="update")
    assert (update["3600.0"], update["7200.0"], update["+Inf"]) == (0, 1, 1)
    active = {(k["kind"], k["status"]) for k, v in samples["clusterm_job_active"] if v}
    assert active == {("discover", "running")}
    started = value(samples, "clusterm_job_active_started_timestamp_seconds")
    assert started == START.timestamp()


def test_a_database_that_cannot_be_read_leaves_a_scrape_that_says_so(
    client: TestClient,
) -> None:
    db = Database(runtime_of(client.app).settings.effective_database_url)
    db.dispose()
    samples = parse(generate_latest(ClusterCollector(lambda: db, EndedJobs())).decode())
    assert samples == {"clusterm_cluster_metrics_up": [({}, 0.0)]}


def test_the_last_drift_check_is_read_from_the_database(client: TestClient, db: Database) -> None:
    def scraped() -> Samples:
        return parse(generate_latest(ClusterCollector(lambda: db, EndedJobs())).decode())

    assert "clusterm_drift_last_check_timestamp_seconds" not in scraped()
    with db.write() as session:
        session.add(DriftCheck(status="done", requested_at=START, at=START, outcome="checked"))
    assert value(scraped(), "clusterm_drift_last_check_timestamp_seconds") == START.timestamp()
