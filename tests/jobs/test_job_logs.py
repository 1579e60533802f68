"""Any job's log by its id, the list's filters, and streams that outlive their job: real jobs,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.jobs.conftest import job_settings, local_node, wait_finished
from tests.polling import wait_until

KEPT = 2  # job_dirs_kept: the smallest the setting allows


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    return job_settings(data_dir, db_url, job_dirs_kept=KEPT)


def run_job(admin: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = admin.post(path, json=body)
    assert response.status_code == 202, response.text
    return wait_finished(admin, response.json()["id"])


def sse_events(client: TestClient, path: str, **kwargs: Any) -> list[dict[str, str]]:
    """Every event of a stream, read to its end, as {field: value}."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with client.stream("GET", path, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                current[key] = value[1:] if value.startswith(" ") else value
    if current:
        events.append(current)
    return events


def lines_of(events: list[dict[str, str]]) -> list[tuple[int, str]]:
    return [(int(e["id"]), e["data"]) for e in events if e.get("event") == "line"]


@pytest.fixture
def three_jobs(admin: TestClient) -> list[dict[str, Any]]:
    """A commission of m1 (successful), a discover of 127.0.0.1, a commission of w1 (failed)."""
    admin.post("/nodes", json=[local_node("m1", "master"), local_node("w1")])
    first = run_job(
        admin,
        "/commission/nodes",
        {"nodes": ["m1"], "host_group": "master", "extra_vars": {"marker": "first"}},
    )
    second = run_job(
        admin,
        "/discover/nodes",
        {"addrs": ["127.0.0.1"], "extra_vars": {"ansible_connection": "local"}},
    )
    third = run_job(
        admin,
        "/commission/nodes",
        {"nodes": ["w1"], "extra_vars": {"fail_hosts": ["w1"], "marker": "third"}},
    )
    assert [first["status"], second["status"], third["status"]] == [
        "successful",
        "successful",
        "failed",
    ]
    return [first, second, third]


def test_a_jobs_log_by_id_until_newer_jobs_push_it_out(admin: TestClient) -> None:
    admin.post("/nodes", json=[local_node("m1", "master"), local_node("w1")])
    first = run_job(
        admin,
        "/commission/nodes",
        {"nodes": ["m1"], "host_group": "master", "extra_vars": {"marker": "first"}},
    )
    last_then = admin.get("/info/job/last")
    second = run_job(admin, "/discover/nodes", {"addrs": ["127.0.0.1"]})

    # The first job is no longer the last one, and its log is served by its id, byte for byte
    # what /info/job/last served while it was the last, with the same headers.
    by_id = admin.get(f"/jobs/{first['id']}/log")
    assert by_id.status_code == 200
    assert by_id.content == last_then.content
    for header in ("X-Clusterm-Job-Id", "X-Clusterm-Job-Status", "X-Clusterm-Next-Line"):
        assert by_id.headers[header] == last_then.headers[header]
    log = by_id.json()
    assert log["id"] == first["id"]
    assert any("marker=first" in line for line in log["logs"])
    total = len(log["logs"])
    # since, tail, format=text (or Accept), color: as on /info/job/last.
    page = admin.get(f"/jobs/{first['id']}/log", params={"since": total - 2}).json()
    assert page["logs"] == log["logs"][-2:]
    tail = admin.get(f"/jobs/{first['id']}/log", params={"tail": 1})
    assert tail.json()["logs"] == log["logs"][-1:]
    assert tail.headers["X-Clusterm-Next-Line"] == str(total + 1)
    text = admin.get(f"/jobs/{first['id']}/log", headers={"Accept": "text/plain"})
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text.splitlines() == log["logs"]
    plain = admin.get(f"/jobs/{first['id']}/log", params={"color": "false", "format": "text"})
    assert "\x1b" in text.text
    assert "\x1b" not in plain.text
    assert "marker=first" in plain.text
    assert admin.get(f"/jobs/{second['id']}/log").content == admin.get("/info/job/last").content

    # job_dirs_kept (2) newer jobs: the first job's log is let go of; the job itself stays.
    third = run_job(admin, "/discover/nodes", {"addrs": ["127.0.0.1"]})

    def gone() -> dict[str, Any] | None:
        r = admin.get(f"/jobs/{first['id']}/log")
        return r.json() if r.status_code == 410 else None

    body = wait_until(gone, timeout_s=10, what="the first job's log to be dropped")
    assert body["error"] == "Gone"
    assert body["setting"] == "job_dirs_kept"
    assert "job_dirs_kept" in body["message"]
    assert f"GET /jobs/{first['id']}" in body["message"]
    assert admin.get(f"/jobs/{first['id']}/log/stream").status_code == 410
    assert admin.get(f"/jobs/{first['id']}").json()["status"] == "successful"
    for kept in (second, third):
        assert admin.get(f"/jobs/{kept['id']}/log").status_code == 200

    unknown = admin.get("/jobs/999/log")
    assert unknown.status_code == 404
    assert "GET /jobs" in unknown.json()["message"]
    assert admin.get("/jobs/999/log/stream").status_code == 404
    assert admin.get("/jobs/0/log").status_code == 422
    assert admin.get(f"/jobs/{2**31}/log").status_code == 422


def test_the_list_filters(admin: TestClient, three_jobs: list[dict[str, Any]]) -> None:
    first, second, third = (j["id"] for j in three_jobs)

    def ids(**params: Any) -> list[int]:
        response = admin.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()]

    assert ids() == [third, second, first]
    assert ids(node="m1") == [first]
    assert ids(node="w1") == [third]
    assert ids(node="127.0.0.1") == [second]
    assert ids(node="m") == [], "a whole name, never a part of one"
    assert ids(node="nobody") == []
    assert ids(kind="commission") == [third, first]
    assert ids(kind=["discover", "commission"]) == [third, second, first]
    assert ids(status="failed") == [third]
    assert ids(kind="commission", status="successful") == [first]
    assert ids(node="w1", status="successful") == []
    assert ids(since="1h") == [third, second, first]
    assert ids(since="2090-01-01T00:00:00Z") == []
    assert ids(since="2000-01-01") == [third, second, first]
    # Paging goes on with the filters.
    assert ids(kind="commission", limit=1) == [third]
    assert ids(kind="commission", limit=1, before_id=third) == [first]

    for params, field, allowed in (
        ({"kind": "comission"}, "kind", "commission, decommission, update, discover"),
        ({"status": "ok"}, "status", "queued, running, successful, failed"),
    ):
        refused = admin.get("/jobs", params=params)
        assert refused.status_code == 422
        body = refused.json()
        assert body["fields"][0]["field"] == field
        assert allowed in body["message"]
    refused = admin.get("/jobs", params={"since": "yesterday"})
    assert refused.status_code == 422
    assert "30m, 1h, 7d" in refused.json()["message"]
    refused = admin.get("/jobs", params={"state": "failed"})
    assert refused.status_code == 422
    assert refused.json()["fields"][0]["field"] == "state"
    assert "status" in refused.json()["message"]
    assert admin.get("/jobs", params={"node": "a\x00b"}).status_code == 422


def test_jobs_as_text_tables(admin: TestClient, three_jobs: list[dict[str, Any]]) -> None:
    text = admin.get("/jobs", params={"format": "text"})
    assert text.headers["content-type"].startswith("text/plain")
    rows = [line.split() for line in text.text.splitlines()]
    assert rows[0][:5] == ["ID", "KIND", "STATUS", "RC", "NODES"]
    assert [r[:5] for r in rows[1:]] == [
        [str(three_jobs[2]["id"]), "commission", "failed", "2", "w1"],
        [str(three_jobs[1]["id"]), "discover", "successful", "0", "127.0.0.1"],
        [str(three_jobs[0]["id"]), "commission", "successful", "0", "m1"],
    ]
    header = text.text.splitlines()[0]
    assert header.index("STATUS") == text.text.splitlines()[1].index("failed"), "aligned"
    # Accept: text/plain, and the filters, too.
    only_failed = admin.get("/jobs", params={"status": "failed"}, headers={"Accept": "text/plain"})
    assert len(only_failed.text.splitlines()) == 2

    one = admin.get(f"/jobs/{three_jobs[2]['id']}", params={"format": "text"}).text
    table, hosts = one.split("\n\n")
    assert table.splitlines()[1].split()[:3] == [str(three_jobs[2]["id"]), "commission", "failed"]
    assert hosts.splitlines()[0].split() == [
        "HOST",
        "OK",
        "CHANGED",
        "FAILED",
        "UNREACHABLE",
        "SKIPPED",
        "RESCUED",
    ]
    assert hosts.splitlines()[1].split()[0] == "w1"
    assert hosts.splitlines()[1].split()[3] == "1"
    assert admin.get(f"/jobs/{three_jobs[2]['id']}").json()["status"] == "failed"  # JSON still


def test_the_stream_of_a_finished_job_and_a_reconnect_after_its_end(
    admin: TestClient, three_jobs: list[dict[str, Any]]
) -> None:
    first = three_jobs[1]  # not the last one; the oldest one's log is no longer kept
    log = admin.get(f"/jobs/{first['id']}/log", params={"color": "false"}).json()["logs"]

    events = sse_events(admin, f"/jobs/{first['id']}/log/stream", params={"color": "false"})
    assert lines_of(events) == list(enumerate(log, start=1)), "the whole backlog, in order"
    assert [e.get("event") for e in events[-1:]] == ["status"]
    assert json.loads(events[-1]["data"])["id"] == first["id"]
    assert json.loads(events[-1]["data"])["status"] == "successful"

    # A client that lost its connection at line 3 after the job ended: the rest, then the end.
    resumed = sse_events(
        admin,
        f"/jobs/{first['id']}/log/stream",
        params={"color": "false"},
        headers={"Last-Event-ID": "3"},
    )
    assert lines_of(resumed) == list(enumerate(log, start=1))[3:]
    assert resumed[-1]["event"] == "status"
    # Past its last line: the status alone.
    done = sse_events(
        admin, f"/jobs/{first['id']}/log/stream", headers={"Last-Event-ID": str(len(log))}
    )
    assert [e["event"] for e in done] == ["status"]

    # The active job's stream: 404 when none is active, as it always was; but a follower that
    # reconnects with Last-Event-ID after the end gets the rest of the last job and its status.
    assert admin.get("/info/job/active/stream").status_code == 404
    last = admin.get("/info/job/last", params={"color": "false"}).json()
    late = sse_events(
        admin,
        "/info/job/active/stream",
        params={"color": "false"},
        headers={"Last-Event-ID": "2"},
    )
    assert lines_of(late) == list(enumerate(last["logs"], start=1))[2:]
    final = json.loads(late[-1]["data"])
    assert (late[-1]["event"], final["id"], final["status"]) == ("status", last["id"], "failed")


def test_the_stream_of_a_running_job_goes_on_to_its_end(admin: TestClient) -> None:
    admin.post("/nodes", json=[local_node("m1", "master")])
    job = admin.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 1}}
    ).json()
    events = sse_events(admin, f"/jobs/{job['id']}/log/stream", params={"color": "false"})
    final = json.loads(events[-1]["data"])
    assert (events[-1]["event"], final["status"]) == ("status", "successful")
    log = admin.get(f"/jobs/{job['id']}/log", params={"color": "false"}).json()["logs"]
    assert lines_of(events) == list(enumerate(log, start=1))
    assert any("TASK [Wait]" in line for _, line in lines_of(events))
