"""`GET /info/drift` as text: one aligned row, the long message last."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi.testclient import TestClient

from app.db import Database
from app.drift import checks

HEADERS = [
    "CHECKED AT",
    "OUTCOME",
    "MASTER",
    "MISSING",
    "RE-JOIN JOBS",
    "EVERY",
    "REMEDIATE",
    "MESSAGE",
]

RoleHeaders = Callable[[str], dict[str, str]]


def parse(text: str) -> list[list[str]]:
    header, *lines = text.splitlines()
    starts = [header.index(h) for h in HEADERS]
    ends = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, ends, strict=True)] for line in lines]


def test_a_real_check_as_text(admin: TestClient, as_role: RoleHeaders) -> None:
    # No master in the cluster: the check runs and is skipped, saying why.
    assert admin.post("/drift/check").status_code == 200
    r = admin.get("/info/drift", params={"format": "text"}, headers=as_role("viewer"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    (row,) = parse(r.text)
    checked = admin.get("/info/drift").json()
    assert row[0] == checked["at"][:19].replace("T", " ")
    assert row[1:] == [
        "skipped",
        "-",
        "-",
        "-",
        f"{checked['interval_s']:g}s",
        "yes" if checked["remediate"] else "no",
        "no master in the cluster to ask",
    ]
    by_accept = admin.get("/info/drift", headers={**as_role("viewer"), "Accept": "text/plain"})
    assert by_accept.text == r.text


def test_missing_nodes_and_jobs_on_one_line(admin: TestClient, db: Database) -> None:
    at = dt.datetime(2026, 11, 30, 7, 0, 1, tzinfo=dt.UTC)
    found = checks.Check(
        at, "checked", "2 nodes missing\nre-join queued", "m1", ["w1", "w2"], [7, 8]
    )
    with db.write() as session:
        checks.finish(
            session=session,
            check_id=checks.request(session=session, actor="admin", stale_before=at),
            check=found,
        )
    text = admin.get("/info/drift", params={"format": "text"}).text
    assert len(text.splitlines()) == 2
    (row,) = parse(text)
    assert row[:5] == ["2026-11-30 07:00:01", "checked", "m1", "w1,w2", "7,8"]
    assert row[-1] == "2 nodes missing re-join queued"


def test_bad_format_and_no_check_yet(admin: TestClient) -> None:
    r = admin.get("/info/drift", params={"format": "html"})
    assert r.status_code == 422
    assert "'json' or 'text'" in r.json()["message"]
    # Before any check: the same 404 as in JSON, saying how to get one.
    r = admin.get("/info/drift", params={"format": "text"})
    assert r.status_code == 404
    assert "POST /drift/check" in r.json()["message"]
