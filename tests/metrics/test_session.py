"""A scripted session against a real `clusterm serve`, then one scrape: every value is checked
against what the session did. A fresh process on a fresh database, so the per-process counters
start at zero and their absolute values hold."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jobs.vocabulary import ACTIVE_STATUSES, Kind, Status
from tests.core.server import Server
from tests.core.test_daemon import CLUSTERM
from tests.jobs.conftest import local_node, wait_finished
from tests.metrics.conftest import by_label, scrape, value

# Enough lines to overflow the smallest log cap (64 KiB), so the tail drops some.
PRINTED_LINES = 12_000
LOG_CAP = 64 * 1024

FINAL_STATUSES = [s for s in Status if s not in ACTIVE_STATUSES]


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[Server]:
    daemon = Server(
        tmp_path / "data",
        tmp_path / "stderr.log",
        db_url,
        CLUSTERM_DRIFT_INTERVAL_S="0",
        CLUSTERM_JOB_LOG_CAP_BYTES=str(LOG_CAP),
        CLUSTERM_LEASE_TTL_S="15",
    )
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def create_token(server: Server, name: str, role: str) -> str:
    """Through `clusterm token create`: another process, whose timeline event the daemon did not
    write (nor count)."""
    args = ["token", "create", "--role", role, "--name", name, "--data-dir", str(server.data_dir)]
    made = subprocess.run(
        [*CLUSTERM, *args],
        env={**os.environ, "CLUSTERM_DATABASE_URL": server.db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


class Sent:
    """Every request a client sent, as (method, path, status)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, int]] = []

    def __call__(self, response: httpx.Response) -> None:
        self.requests.append(
            (response.request.method, response.request.url.path, response.status_code)
        )

    def count(self, method: str, pattern: str, status: int) -> int:
        return sum(
            1
            for m, path, s in self.requests
            if m == method and s == status and re.fullmatch(pattern, path)
        )


def timeline_actions(http: httpx.Client) -> Counter[str]:
    """Every event on the timeline, counted by action (paged by cursor, newest first)."""
    counted: Counter[str] = Counter()
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = http.get("/info/timeline", params=params).json()
        counted.update(event["action"] for event in page["items"])
        if page["next_before_id"] is None:
            return counted
        params["before_id"] = page["next_before_id"]


def test_a_scrape_tells_what_the_session_did(server: Server) -> None:
    sent = Sent()
    admin = server.client(event_hooks={"response": [sent]})
    viewer_token = create_token(server, "viewer", "viewer")
    viewer = server.client(viewer_token, event_hooks={"response": [sent]})

    r = admin.post("/nodes", json=[local_node(name, "master") for name in ("m1", "m2", "m3")])
    assert r.status_code == 201, r.text
    failed = admin.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"fail_hosts": ["m1"]}}
    )
    assert failed.status_code == 202, failed.text
    assert wait_finished(admin, failed.json()["id"])["status"] == "failed"
    printed = admin.post(
        "/commission/nodes",
        json={"nodes": ["m2"], "extra_vars": {"print_lines": PRINTED_LINES}},
    )
    assert printed.status_code == 202, printed.text
    assert wait_finished(admin, printed.json()["id"])["status"] == "successful"

    # Refused: no token, not a bearer token, a token nobody made, a role too low.
    with httpx.Client(base_url=server.url, event_hooks={"response": [sent]}) as anonymous:
        assert anonymous.get("/info/nodes").status_code == 401
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        assert anonymous.get("/info/nodes", headers=basic).status_code == 401
        unknown = {"Authorization": "Bearer cltm_nobody-made-this-token"}
        assert anonymous.get("/info/nodes", headers=unknown).status_code == 401
    assert viewer.post("/nodes", json=[local_node("w9")]).status_code == 403
    # A path no route has: counted, under no label it could invent.
    assert admin.get("/no/such/path-8f3a").status_code == 404

    logs = [admin.get(f"/jobs/{job.json()['id']}/log").json() for job in (failed, printed)]
    nodes = admin.get("/info/nodes").json()
    actions = timeline_actions(admin)
    samples = scrape(viewer)

    # The cluster, from the database.
    assert value(samples, "clusterm_jobs_total", kind="commission", status="failed") == 1
    assert value(samples, "clusterm_jobs_total", kind="commission", status="successful") == 1
    others = [
        (labels, v)
        for labels, v in samples["clusterm_jobs_total"]
        if labels["kind"] != "commission" or labels["status"] not in ("failed", "successful")
    ]
    # Every kind and final status, from the first scrape on.
    assert len(others) == len(Kind) * len(FINAL_STATUSES) - 2
    assert all(v == 0 for _, v in others)
    assert value(samples, "clusterm_job_duration_seconds_count", kind="commission") == 2
    assert by_label(samples, "clusterm_nodes", "state") == {
        state: sum(1 for n in nodes if n["state"] == state)
        for state in by_label(samples, "clusterm_nodes", "state")
    }
    assert by_label(samples, "clusterm_nodes", "state")["failed"] == 1
    assert by_label(samples, "clusterm_nodes", "state")["commissioned"] == 1
    assert by_label(samples, "clusterm_nodes", "state")["registered"] == 1
    assert value(samples, "clusterm_nodes_missing") == 0
    assert set(by_label(samples, "clusterm_job_active", "kind").values()) == {0}
    assert "clusterm_job_active_started_timestamp_seconds" not in samples
    assert value(samples, "clusterm_cluster_metrics_up") == 1

    # This process: what its log writer took, and what the tail dropped.
    lines = sum(log["next_line"] - 1 for log in logs)
    dropped = sum(log["dropped_lines"] for log in logs)
    assert dropped > 0, "the printing job should have overflowed its log"
    assert value(samples, "clusterm_job_log_lines_total") == lines
    assert value(samples, "clusterm_job_log_dropped_lines_total") == dropped
    assert value(samples, "clusterm_job_log_bytes_total") == sum(map(log_bytes, logs))

    # Timeline events this process wrote: all of them, but the token the CLI made.
    written = by_label(samples, "clusterm_timeline_events_total", "action")
    assert written == {**actions, "token": actions["token"] - 1}
    assert written["commission"] > 0

    # Requests, by route template.
    assert value(
        samples, "clusterm_http_requests_total", method="GET", route="/jobs/{job_id}", status="200"
    ) == sent.count("GET", r"/jobs/\d+", 200)
    assert (
        value(samples, "clusterm_http_requests_total", method="POST", route="/nodes", status="403")
        == 1
    )
    assert (
        value(
            samples, "clusterm_http_requests_total", method="GET", route="unmatched", status="404"
        )
        == 1
    )
    routes = {labels["route"] for labels, _ in samples["clusterm_http_requests_total"]}
    assert not any("8f3a" in route for route in routes)
    assert value(
        samples,
        "clusterm_http_request_duration_seconds_count",
        method="GET",
        route="/jobs/{job_id}",
    ) == sent.count("GET", r"/jobs/\d+", 200)

    # Tokens refused, by reason.
    assert by_label(samples, "clusterm_token_refusals_total", "reason") == {
        "missing": 1,
        "malformed": 1,
        "unknown": 1,
        "expired": 0,
        "forbidden": 1,
    }


def log_bytes(log: dict[str, Any]) -> int:
    """The bytes of every line a job's log took: those it kept (UTF-8, with their newline, the
    gap's marker line left out) and those its tail dropped."""
    lines = list(log["logs"])
    if log["gap"] is not None:
        del lines[log["gap"]["after_line"] - log["first_line"] + 1]
    return sum(len(line.encode()) + 1 for line in lines) + int(log["dropped_bytes"])
