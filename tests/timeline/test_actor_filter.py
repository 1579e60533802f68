"""The `actor` filter (who did it) on the timeline, a node's history and the live stream: exact,
repeatable like `node`, and a 422 naming the parameter for a value no actor can have."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from tests.conftest import node_body
from tests.timeline.conftest import Live, SseReader, write_events


def actors_of(page: dict[str, object]) -> list[str | None]:
    items = page["items"]
    assert isinstance(items, list)
    return [item["actor"] for item in items]


def test_timeline_keeps_only_the_actors_asked_for(db: Database, admin: TestClient) -> None:
    write_events(db, 2, actor="alice")
    write_events(db, 3, actor="bob")
    write_events(db, 1, actor="alice-ops")  # a longer name is another actor, not a match
    write_events(db, 1)  # no actor at all

    r = admin.get("/info/timeline", params={"actor": "alice"})
    assert r.status_code == 200, r.text
    assert actors_of(r.json()) == ["alice", "alice"]

    r = admin.get("/info/timeline", params=[("actor", "alice"), ("actor", "bob")])
    assert r.status_code == 200, r.text
    assert Counter(actors_of(r.json())) == {"alice": 2, "bob": 3}

    r = admin.get("/info/timeline", params={"actor": "nobody"})
    assert r.json()["items"] == []


def test_actor_combines_with_the_other_filters_and_pages(db: Database, admin: TestClient) -> None:
    write_events(db, 3, actor="alice", result="failed")
    write_events(db, 4, actor="alice", result="succeeded")
    write_events(db, 2, actor="bob", result="failed")

    first = admin.get(
        "/info/timeline", params={"actor": "alice", "result": "failed", "limit": 2}
    ).json()
    assert actors_of(first) == ["alice", "alice"]
    assert first["next_before_id"] is not None
    older = admin.get(
        "/info/timeline",
        params={
            "actor": "alice",
            "result": "failed",
            "limit": 2,
            "before_id": first["next_before_id"],
        },
    ).json()
    assert actors_of(older) == ["alice"]
    assert older["next_before_id"] is None
    assert {item["result"] for item in first["items"] + older["items"]} == {"failed"}


def test_node_history_filters_by_actor(db: Database, admin: TestClient) -> None:
    assert admin.post("/nodes", json=node_body("n1")).status_code == 201
    write_events(db, 2, node="n1", actor="alice")
    write_events(db, 1, node="n1", actor="bob")
    write_events(db, 2, node="n2", actor="alice")

    r = admin.get("/info/node/n1/history", params={"actor": "alice"})
    assert r.status_code == 200, r.text
    assert [(i["node"], i["actor"]) for i in r.json()["items"]] == [("n1", "alice")] * 2


def test_the_text_format_filters_by_actor_too(db: Database, admin: TestClient) -> None:
    write_events(db, 1, actor="alice")
    write_events(db, 1, actor="bob")
    r = admin.get("/info/timeline", params={"actor": "bob", "format": "text"})
    lines = r.text.splitlines()
    assert len(lines) == 1, r.text
    assert "actor=bob" in lines[0]


BAD_ACTORS = ["", "a" * 65, "line\nbreak", "nul\x00", "tab\there", "del\x7f"]


@pytest.mark.parametrize("path", ["/info/timeline", "/info/node/n1/history"])
@pytest.mark.parametrize("value", BAD_ACTORS, ids=range(len(BAD_ACTORS)))
def test_bad_actor_is_422_naming_the_parameter(admin: TestClient, path: str, value: str) -> None:
    admin.post("/nodes", json=node_body("n1"))
    r = admin.get(path, params={"actor": value})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["fields"][0]["field"] == "actor"
    assert "actor" in body["message"]
    assert len(r.text) < 1000


def test_longest_actor_is_answered(admin: TestClient) -> None:
    r = admin.get("/info/timeline", params={"actor": "a" * 64})
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []


def test_a_bad_actor_on_the_stream_is_422_before_it_opens(live: Live) -> None:
    with live.http() as http:
        r = http.get("/info/timeline/stream", params={"actor": "x" * 65})
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == "actor"


def test_stream_sends_only_the_actors_asked_for(live: Live) -> None:
    reader = SseReader(live, params={"actor": ["alice", "carol"]})
    try:
        reader.ready()
        write_events(live.db, 1, actor="bob")
        alice = write_events(live.db, 1, actor="alice")
        write_events(live.db, 1)
        carol = write_events(live.db, 1, actor="carol")
        got = reader.take_events(2)
        assert [int(m.id or 0) for m in got] == alice + carol
        assert [json.loads(m.data)["actor"] for m in got] == ["alice", "carol"]
    finally:
        reader.close()
