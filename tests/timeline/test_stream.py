"""The live stream against the real daemon on a loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa

from app.timeline import retention
from app.timeline.models import TimelineEvent
from tests.conftest import node_body
from tests.polling import wait_until
from tests.timeline.conftest import Live, SseReader, write_events

CLUSTERM = str(Path(sys.executable).parent / "clusterm")  # the installed command


def all_ids(live: Live) -> list[int]:
    with live.db.read() as session:
        return list(session.scalars(sa.select(TimelineEvent.id).order_by(TimelineEvent.id)))


def test_resume_after_a_disconnect_has_no_gap_and_no_duplicate(live: Live) -> None:
    write_events(live.db, 5)
    first = SseReader(live, params={"after_id": 0}, stop_after=8)
    first.ready()
    backlog = first.take_events(len(all_ids(live)))  # the bootstrap token event and our 5
    for _ in range(3):  # live events, each its own transaction
        write_events(live.db, 1)
    live_part = first.take_events(2)  # the reader disconnects after its 8th event
    wait_until(first.stopped.is_set, timeout_s=10, what="the first reader to disconnect")
    seen = [int(m.id or 0) for m in backlog + live_part]
    assert len(seen) == 8

    write_events(live.db, 10)  # while nobody listens
    # A reconnecting EventSource repeats the original URL: the header must win over after_id=0.
    second = SseReader(live, params={"after_id": 0}, last_event_id=str(seen[-1]))
    second.ready()
    rest = second.take_events(len(all_ids(live)) - len(seen))
    write_events(live.db, 1)
    rest += second.take_events(1)
    second.close()

    received = seen + [int(m.id or 0) for m in rest]
    assert received == all_ids(live)  # every event, in order, once
    assert json.loads(rest[-1].data)["id"] == received[-1]
    assert second.messages.empty()


def test_stream_without_cursor_starts_at_the_head_and_filters(live: Live) -> None:
    write_events(live.db, 3, node="old")
    reader = SseReader(live, params={"node": "n2", "result": "failed"})
    reader.ready()
    write_events(live.db, 1, node="n1", result="failed")
    write_events(live.db, 1, node="n2", result="succeeded")
    [wanted] = write_events(live.db, 1, node="n2", result="failed", severity="error")
    [msg] = reader.take_events(1)
    reader.close()
    assert int(msg.id or 0) == wanted
    body = json.loads(msg.data)
    assert (body["node"], body["result"], body["severity"]) == ("n2", "failed", "error")
    assert reader.messages.empty()


def test_keep_alive_comments_while_idle(live: Live) -> None:
    reader = SseReader(live)
    reader.ready()
    wait_until(
        lambda: any(c.startswith("ping") for c in reader.comments), timeout_s=5, what="a keep-alive"
    )
    reader.close()


def test_cursor_older_than_retention_gets_an_explicit_reset(live: Live) -> None:
    ids = write_events(live.db, 20)
    policy = retention.Policy(
        keep_days=30, max_events=5, max_audit_events=1000, max_per_node=10, batch=4
    )
    retention.purge(db=live.db, policy=policy)
    kept = ids[-5:]
    assert all_ids(live)[1:] == kept  # and, first, the audit event of the bootstrap token
    reader = SseReader(live, last_event_id=str(ids[2]))
    reset = reader.take()
    assert reset.event == "reset"
    body = json.loads(reset.data)
    assert body["error"] == "CursorExpired"
    assert body["purged_through_id"] == ids[-6]
    assert [int(m.id or 0) for m in reader.take_events(5)] == kept  # then what is still kept
    reader.close()


def test_cursor_never_issued_gets_a_reset_to_the_head(live: Live) -> None:
    head = all_ids(live)[-1]
    reader = SseReader(live, params={"after_id": head + 1000})
    reset = reader.take()
    assert reset.event == "reset"
    assert json.loads(reset.data)["error"] == "CursorUnknown"
    assert reset.id == str(head)  # moves the client's Last-Event-ID
    reader.ready()
    [new] = write_events(live.db, 1)
    assert int(reader.take_events(1)[0].id or 0) == new
    reader.close()


def test_bad_last_event_id_is_refused_by_name(live: Live) -> None:
    with live.http() as http:
        for bad in ("abc", "-1", "1.5", str(2**64)):
            r = http.get("/info/timeline/stream", headers={"Last-Event-ID": bad})
            assert r.status_code == 422, bad
            assert r.json()["fields"][0]["field"] == "Last-Event-ID"
        r = http.get("/info/timeline/stream", params={"since": "1h"})
        assert r.status_code == 422
        assert r.json()["fields"][0]["field"] == "since"


def test_events_from_another_process_reach_followers(live: Live) -> None:
    """`clusterm token create` writes the database directly: the follower's poll finds it."""
    reader = SseReader(live)
    reader.ready()
    env = {
        **os.environ,
        "CLUSTERM_DATA_DIR": str(live.settings.data_dir),
        "CLUSTERM_DATABASE_URL": live.settings.effective_database_url,
    }
    done = subprocess.run(
        [CLUSTERM, "token", "create", "--role", "operator", "--name", "ops"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [msg] = reader.take_events(1)
    reader.close()
    body = json.loads(msg.data)
    assert (body["action"], body["reason"], body["severity"]) == ("token", "TokenCreated", "audit")
    assert body["details"] == {"token": "ops", "role": "operator", "expires_at": None}
    assert body["audit"] is True
    assert body["actor"].endswith("@clusterm-cli")
    assert done.stdout.strip() not in msg.data  # the token itself is never recorded


def test_follower_sees_every_event_once_in_order_under_concurrent_requests(live: Live) -> None:
    reader = SseReader(live)
    reader.ready()
    start = all_ids(live)[-1]
    errors: list[str] = []

    def client(worker: int) -> None:
        with live.http("admin") as http:
            for i in range(5):
                name = f"w{worker}-n{i}"
                steps = [
                    http.post("/nodes", json=node_body(name)),
                    http.patch(f"/nodes/{name}", json={"labels": {"step": str(i)}}),
                    http.delete(f"/nodes/{name}"),
                ]
                errors.extend(r.text for r in steps if r.status_code >= 300)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = [i for i in all_ids(live) if i > start]
    assert len(expected) == 4 * 5 * 3
    got = [int(m.id or 0) for m in reader.take_events(len(expected))]
    reader.close()
    assert got == expected
    # Per node, the story reads in the order it happened.
    with live.http() as http:
        history = http.get("/info/node/w2-n3/history").json()["items"]
    assert [e["action"] for e in history] == ["delete", "change", "register"]
