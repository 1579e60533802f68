"""Jobs on three running replicas: any replica accepts, the leader runs each job once, and every
replica serves the same reads, the log and its live follow included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.cluster.replicas import (
    Cluster,
    add_nodes,
    commission,
    emitted,
    events,
    fresh,
    job_of,
    log_lines,
    runs_recorded,
    started,
    wait_finished,
)
from tests.polling import wait_until


@pytest.fixture
def idle(shared: Cluster) -> Cluster:
    """The shared replicas with no job active (a test's job must not refuse the next test's)."""
    client = shared.leader().http
    wait_until(
        lambda: client.get("/info/job/active").status_code == 404,
        timeout_s=60,
        what="the last test's job to end",
    )
    return shared


def test_a_job_sent_to_a_follower_runs_once_on_the_leader(idle: Cluster) -> None:
    leader = idle.leader()
    follower = next(r for r in idle.living if r is not leader)
    node = fresh("f")
    add_nodes(follower.http, node)
    r = commission(follower.http, node, record_to=str(idle.record), emit_lines=20)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["Location"] == f"/jobs/{job_id}"
    job = wait_finished(follower.http, job_id)
    assert job["status"] == "successful", job
    assert started(follower.http, job_id) == 1
    assert runs_recorded(idle, job_id) == 1
    (event,) = events(follower.http, job=job_id, reason="JobStarted")
    assert leader.id in str(event["note"])  # run by the leader, not by the replica asked
    assert emitted(log_lines(follower.http)) == list(range(20))


def test_reads_are_the_same_on_every_replica(idle: Cluster) -> None:
    leader = idle.leader()
    nodes = [fresh("r"), fresh("r")]
    add_nodes(leader.http, *nodes)
    r = commission(idle.living[-1].http, *nodes, emit_lines=30)
    assert r.status_code == 202, r.text
    job = wait_finished(leader.http, r.json()["id"])
    assert job["status"] == "successful", job

    reads: list[tuple[str, dict[str, Any]]] = [
        ("/info/nodes", {}),
        ("/jobs", {}),
        (f"/jobs/{job['id']}", {}),
        ("/info/job/last", {}),
        ("/info/job/last", {"since": 5}),
        ("/info/job/last", {"tail": 3}),
        ("/info/job/last", {"format": "text"}),
        ("/info/job/last", {"since": 5, "format": "text"}),
        ("/info/timeline", {"limit": 200}),
        ("/info/timeline", {"job": job["id"], "format": "text"}),
    ]
    for path, params in reads:
        answers = {}
        for replica in idle.living:
            response = replica.http.get(path, params=params)
            assert response.status_code == 200, (replica.id, path, response.text)
            answers[replica.id] = response.content
        assert len(set(answers.values())) == 1, f"{path} {params} differs between replicas"
    whole = log_lines(leader.http)
    assert sorted(emitted(whole)) == sorted([*range(30), *range(30)])  # each node's lines
    assert log_lines(idle.living[-1].http, since=5) == whole[5:]


def test_50_concurrent_submissions_start_exactly_one_job(idle: Cluster) -> None:
    node = fresh("c")
    add_nodes(idle.leader().http, node)
    replicas = idle.living

    def submit(i: int) -> httpx.Response:
        with replicas[i % len(replicas)].new_client() as client:
            return commission(client, node, sleep_s=30)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(submit, range(50)))
    accepted = [a for a in answers if a.status_code == 202]
    assert len(accepted) == 1, [(a.status_code, a.text) for a in answers]
    job_id = accepted[0].json()["id"]
    refused = [a for a in answers if a is not accepted[0]]
    for answer in refused:
        assert answer.status_code == 409, answer.text
        body = answer.json()
        assert body["error"] == "JobActive", body
        assert body["job_id"] == job_id, body
        assert f"job {job_id} " in body["message"]
    client = replicas[0].http
    assert [j["id"] for j in client.get("/jobs").json()].count(job_id) == 1
    wait_until(
        lambda: job_of(client, job_id)["status"] == "running",
        timeout_s=30,
        what=f"job {job_id} to run",
    )
    assert started(client, job_id) == 1
    cancel = replicas[-1].http.post("/info/job/active/cancel")
    assert cancel.status_code == 200, cancel.text
    assert wait_finished(client, job_id)["status"] == "canceled"


# --- the live follow, resumed on another replica ------------------------------------------------


def sse(client: httpx.Client, headers: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(event, id, data) of each Server-Sent Event of the active job's stream."""
    with client.stream("GET", "/info/job/active/stream", headers=headers, timeout=60) as r:
        assert r.status_code == 200, r.read()
        event, ident, data = "message", "", ""
        for line in r.iter_lines():
            if line == "":
                if data or ident:
                    yield event, ident, data
                event, ident, data = "message", "", ""
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("id:"):
                ident = line[3:].strip()
            elif line.startswith("data:"):
                data = line[5:].lstrip(" ")


def test_the_follow_resumes_on_another_replica_without_gaps_or_repeats(idle: Cluster) -> None:
    # Followed on the leader, resumed on a follower (as a client would after its replica died).
    first = idle.leader()
    second = next(r for r in idle.living if r is not first)
    node = fresh("s")
    add_nodes(first.http, node)
    r = commission(first.http, node, emit_lines=80, emit_rate=20)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    wait_until(
        lambda: first.http.get("/info/job/active").status_code == 200,
        timeout_s=30,
        what=f"job {job_id} to be active",
    )
    seen: list[tuple[int, str]] = []
    for event, ident, data in sse(first.http, {}):
        if event == "line":
            seen.append((int(ident), data))
            if len(emitted([data])) and emitted([data])[0] >= 20:
                break  # the connection drops here, mid-job
    last_id = seen[-1][0]
    status: dict[str, Any] | None = None
    for event, ident, data in sse(second.http, {"Last-Event-ID": str(last_id)}):
        if event == "line":
            seen.append((int(ident), data))
        elif event == "status":
            status = json.loads(data)
    assert status is not None
    assert status["id"] == job_id
    assert status["status"] == "successful", status
    ids = [i for i, _ in seen]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "line ids with a gap or a repeat"
    assert emitted([d for _, d in seen]) == list(range(80))
    # What the two streams gave is the job's whole log, as every replica serves it.
    assert [d for _, d in seen] == log_lines(second.http)[ids[0] - 1 :][: len(seen)]
    assert wait_finished(first.http, job_id)["status"] == "successful"
