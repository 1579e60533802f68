"""Hostile input to the read and stream routes: always a 4xx naming what was wrong, never a 500,
on SQLite and PostgreSQL (whose 64-bit ids and NUL-free strings are stricter than SQLite's)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.conftest import node_body

MAX_ID = 2**63 - 1
HUGE = "9" * 5000  # beyond the 4,300 digits int() accepts

BAD_TIMES = [
    "9999-12-31T23:00:00-14:00",  # year 10000 in UTC
    "0001-01-01T00:00:00+14:00",  # year 0 in UTC
    HUGE + "s",
    "1s" * 3000,
    "99999999999999999999w",  # before year 1
    "2026-13-01",
    "",
]


@pytest.mark.parametrize("path", ["/info/timeline", "/info/node/n1/history"])
@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("value", BAD_TIMES, ids=range(len(BAD_TIMES)))
def test_bad_times_are_422_naming_the_parameter(
    admin: TestClient, path: str, param: str, value: str
) -> None:
    admin.post("/nodes", json=node_body("n1"))
    r = admin.get(path, params={param: value})
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == param
    assert len(r.text) < 1000  # the value is quoted, not echoed whole


def test_times_at_the_edges_of_the_calendar_are_answered(admin: TestClient) -> None:
    for since in ("0001-01-01T00:00:00Z", "9999-12-31T00:00:00+00:00", "9999-12-31T23:59:59"):
        r = admin.get("/info/timeline", params={"since": since})
        assert r.status_code == 200, (since, r.text)
    r = admin.get("/info/timeline", params={"since": "0001-01-01", "until": "9999-12-31"})
    assert r.status_code == 200
    assert r.json()["items"]  # the bootstrap token's event, between the two


@pytest.mark.parametrize("param", ["after_id", "before_id", "job"])
@pytest.mark.parametrize("value", [HUGE, str(MAX_ID + 1), str(2**64), "-1", "1e3", "٣"])
def test_ids_out_of_range_are_422_naming_the_parameter(
    admin: TestClient, param: str, value: str
) -> None:
    r = admin.get("/info/timeline", params={param: value})
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == param


@pytest.mark.parametrize("param", ["after_id", "before_id", "job"])
def test_the_largest_id_is_answered_on_every_database(admin: TestClient, param: str) -> None:
    r = admin.get("/info/timeline", params={param: str(MAX_ID)})
    assert r.status_code == 200, r.text
    r = admin.get("/info/node/n1/history", params={param: str(MAX_ID)})
    assert r.status_code == 404  # no such node, and no database error either


@pytest.mark.parametrize(
    "value", [HUGE, str(MAX_ID + 1), "-1", "²", "1 2", "x" * 300], ids=range(6)
)
def test_bad_last_event_ids_are_422_on_both_streams(admin: TestClient, value: str) -> None:
    for path in ("/info/timeline/stream", "/info/job/active/stream"):
        r = admin.get(path, headers={"Last-Event-ID": value.encode()})  # as UTF-8 bytes
        assert r.status_code == 422, (path, r.text)
        assert r.json()["fields"][0]["field"] == "Last-Event-ID"
        assert len(r.text) < 1000


def test_bad_job_stream_line_numbers_are_422(admin: TestClient) -> None:
    for value in (HUGE, str(2**31), "-1"):
        r = admin.get("/info/job/active/stream", params={"since": value})
        assert r.status_code == 422, r.text
        assert r.json()["fields"][0]["field"] == "since"


@pytest.mark.parametrize("name", ["a\x00b", "\x00", "n1\n", "x" * 254])
def test_names_no_node_can_have_are_422(admin: TestClient, name: str) -> None:
    r = admin.get("/info/timeline", params={"node": name})
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == "node"
    r = admin.get("/info/timeline/stream", params={"node": name})
    assert r.status_code == 422, r.text
    r = admin.get(f"/info/node/{quote(name)}/history")
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == "name"


def test_drift_routes_take_no_input_and_refuse_what_they_do_not_know(admin: TestClient) -> None:
    r = admin.post("/drift/check", json={"anything": "\x00" * 10})
    assert r.status_code == 200  # no body is read: the check runs as it would without one
    assert admin.get("/info/drift", params={"x": HUGE}).status_code == 200
