"""Following the active job with Server-Sent Events: backlog, live lines, the final status."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth import service as auth
from app.config import Settings
from app.db import Database
from app.timeline import service as timeline
from tests.jobs.conftest import local_node, wait_lines
from tests.polling import wait_until
from tests.timeline.conftest import ENDS_WITHIN_S, Live, Message, SseReader, serve


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


# --- against the real daemon on a loopback port: a stream outlives the request that opened it ---


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    """The daemon with room for two followers, a local master node, and a viewer token."""
    with serve(settings.model_copy(update={"max_stream_followers": 2})) as url:
        db = timeline.attach(Database(settings.effective_database_url))
        tokens = {"admin": settings.admin_token_file.read_text().strip()}
        with db.write() as session:
            tokens["viewer"] = auth.create_token(session=session, name="viewer", role="viewer")
        state = Live(url, tokens, db, settings)
        with state.http("admin") as http:
            assert http.post("/nodes", json=[local_node("m1", "master")]).status_code == 201
        yield state
        with state.http("admin") as http:
            http.post("/info/job/active/cancel")
        db.dispose()


def start_long_job(live: Live) -> int:
    with live.http("admin") as http:
        r = http.post("/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 60}})
        assert r.status_code == 202, r.text
        job_id: int = r.json()["id"]
    return job_id


def first_line(reader: SseReader) -> Message:
    msg = reader.take(30)
    assert msg.event == "line", msg
    return msg


def test_a_job_stream_ends_when_its_token_is_revoked(live: Live) -> None:
    start_long_job(live)
    reader = SseReader(live, path="/info/job/active/stream")
    first_line(reader)
    with live.db.write() as session:
        auth.revoke_token(session=session, name="viewer")
    revoked_at = time.monotonic()
    while (msg := reader.take(ENDS_WITHIN_S)).event == "line":
        pass  # lines printed before the check: the job is still running
    assert time.monotonic() - revoked_at < ENDS_WITHIN_S
    assert msg.event == "error"
    body = json.loads(msg.data)
    assert body["error"] == "Unauthorized"
    assert "stream ended" in body["message"]
    wait_until(reader.stopped.is_set, timeout_s=2, what="the server to close the stream")
    with live.http("admin") as http:
        assert http.get("/info/job/active").json()["status"] == "running"  # the job goes on


def test_the_follower_cap_counts_job_and_timeline_streams_together(live: Live) -> None:
    start_long_job(live)
    job_reader = SseReader(live, path="/info/job/active/stream")
    first_line(job_reader)
    timeline_reader = SseReader(live)
    timeline_reader.ready()
    with live.http() as http:
        for path in ("/info/job/active/stream", "/info/timeline/stream"):
            r = http.get(path)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["Retry-After"].isdigit()
            assert r.json()["error"] == "TooManyFollowers"
    with live.http("admin") as http:
        assert http.post("/info/job/active/cancel").status_code == 200
    # The job's end ends its stream, and its place is free again.
    while (msg := job_reader.take(30)).event != "status":
        assert msg.event in ("line", "gap")
    wait_until(job_reader.stopped.is_set, timeout_s=5, what="the job stream to end")

    def admitted() -> bool:
        with live.http() as http, http.stream("GET", "/info/timeline/stream") as response:
            return response.status_code == 200

    wait_until(admitted, timeout_s=10, what="the job stream's place to free up")
    timeline_reader.close()
