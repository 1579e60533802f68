"""Following the active job with Server-Sent Events: backlog, live lines, the final status."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.jobs.conftest import local_node, wait_lines


def read_events(client: TestClient, **kwargs: Any) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with client.stream("GET", "/info/job/active/stream", **kwargs) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[key] = current[key] + "\n" + value if key in current else value
    if current:
        events.append(current)
    return events


def test_stream_sends_backlog_live_lines_and_the_status(admin: TestClient) -> None:
    admin.post("/nodes", json=[local_node("m1", "master")])
    job = admin.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 1}}
    ).json()
    # Connect once the job has printed something: those lines are the backlog.
    backlog = wait_lines(admin, "TASK [Say what this job is]")
    events = read_events(admin, params={"color": "false"})

    lines = [e for e in events if e.get("event") == "line"]
    ids = [int(e["id"]) for e in lines]
    assert ids == list(range(1, len(ids) + 1)), "every line once, in order, numbered from 1"
    assert len(ids) > len(backlog["logs"]), "lines that came after we connected too"
    assert not any("\x1b" in e["data"] for e in lines)
    assert events[-1]["event"] == "status"
    final = json.loads(events[-1]["data"])
    assert final["id"] == job["id"]
    assert final["status"] == "successful"
    last = admin.get("/info/job/last", params={"color": "false"}).json()
    assert [e["data"] for e in lines] == last["logs"]


def test_stream_resumes_after_last_event_id(admin: TestClient) -> None:
    admin.post("/nodes", json=[local_node("m1", "master")])
    admin.post("/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 1}})
    seen = wait_lines(admin, "TASK [Wait]")
    resume_at = seen["next_line"] - 1
    events = read_events(admin, headers={"Last-Event-ID": str(resume_at)})
    ids = [int(e["id"]) for e in events if e.get("event") == "line"]
    assert ids[0] == resume_at + 1
    assert events[-1]["event"] == "status"
