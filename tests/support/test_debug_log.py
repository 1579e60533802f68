"""GET /debug/log: this replica's recent log, numbered, from memory."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from app.logs import LogRing
from app.runtime import runtime_of


def test_recent_lines_since_and_tail(admin: TestClient) -> None:
    log = logging.getLogger("clusterm")
    for i in range(5):
        log.warning("marker line %d", i)
    r = admin.get("/debug/log")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-clusterm-replica"] == runtime_of(admin.app).identity.replica_id
    lines = r.text.splitlines()
    markers = [line for line in lines if "marker line" in line]
    assert [m.rsplit(" ", 1)[1] for m in markers] == ["0", "1", "2", "3", "4"]
    assert "WARNING clusterm: marker line 4" in markers[-1]
    next_line = int(r.headers["x-clusterm-next-line"])

    log.warning("after the cursor")
    newer = admin.get("/debug/log", params={"since": next_line - 1})
    assert "after the cursor" in newer.text
    assert "marker line" not in newer.text  # nothing before the cursor again
    assert int(newer.headers["x-clusterm-next-line"]) > next_line

    last_two = admin.get("/debug/log", params={"tail": 2}).text.splitlines()
    assert len(last_two) == 2
    assert "after the cursor" in last_two[-1]


def test_bad_parameters_are_422(admin: TestClient) -> None:
    for params in ({"tail": 0}, {"since": -1}, {"tail": "many"}):
        r = admin.get("/debug/log", params=params)
        assert r.status_code == 422, r.text
        assert r.json()["message"]


def test_a_viewer_gets_403(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.get("/debug/log", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert r.status_code == 403
    assert r.json()["required_role"] == "operator"
    r = client.get("/debug/log", headers={"Authorization": f"Bearer {tokens['operator']}"})
    assert r.status_code == 200


def test_the_ring_follows_the_verbosity_in_effect(admin: TestClient) -> None:
    log = logging.getLogger("clusterm.jobs")
    admin.put("/debug/flags/v", content="0")
    log.info("quiet at V0")
    assert admin.put("/debug/flags/v", content="4").status_code == 200
    log.debug("heard at V4")
    text = admin.get("/debug/log").text
    assert "heard at V4" in text
    assert "quiet at V0" not in text


def test_the_ring_keeps_the_newest_within_its_bytes() -> None:
    ring = LogRing(max_bytes=64 * 1024)
    ring.setFormatter(logging.Formatter("%(message)s"))
    for i in range(10_000):
        ring.handle(logging.makeLogRecord({"msg": f"line {i:05d} " + "x" * 90}))
    piece = ring.read()
    assert sum(len(line) + 1 for line in piece.lines) <= 64 * 1024
    assert piece.lines[-1].startswith("line 09999")
    assert piece.next_line == 10_001
    assert piece.first_line == 10_001 - len(piece.lines)
    assert piece.lines[0].startswith(f"line {piece.first_line - 1:05d}")
    # A cursor older than the ring gets what it holds, and can tell lines were dropped.
    assert ring.read(since=5).lines == piece.lines
    assert ring.read(since=10_000).lines == []
    huge = ring.read(tail=1)
    assert len(huge.lines) == 1
    ring.handle(logging.makeLogRecord({"msg": "y" * 100_000}))
    cut = ring.read(tail=1).lines[0]
    assert len(cut) < LogRing.MAX_LINE_BYTES + 100
    assert "line cut, 100000 bytes" in cut
