"""The inventory as text (`format=text` or `Accept: text/plain`): the table clusterctl prints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db import Database
from app.drift import service as drift
from app.nodes.models import Node
from tests.conftest import node_body

SEEN = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
HEADERS = ["NAME", "ADDRESS", "USER", "GROUP", "STATE", "IN CLUSTER", "LAST SEEN", "LABELS"]

RoleHeaders = Callable[[str], dict[str, str]]


@pytest.fixture
def inventory(admin: TestClient, db: Database) -> None:
    nodes = [
        node_body("m1", host_group="master", labels={"zone": "a", "rack": "r1"}),
        node_body("w1", address="::1", ssh_port=2222, ssh_user="ops"),
        node_body("w2", vars={"motd": "first line\nsecond line", "port": 8080}),
    ]
    assert admin.post("/nodes", json=nodes).status_code == 201
    with db.write() as session:
        session.execute(
            sa.update(Node).where(Node.name.in_(["m1", "w1"])).values(state="commissioned")
        )
    # The drift watch saw m1 and not w1: the IN CLUSTER column says so.
    with db.write() as session:
        drift.apply_node_list(session=session, present={"m1": "u1"}, now=SEEN)


def parse(text: str) -> list[list[str]]:
    """Cut each row at the columns where the headers start: a cell out of line reads wrong."""
    header, *lines = text.splitlines()
    starts = [header.index(h) for h in HEADERS]
    ends = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, ends, strict=True)] for line in lines]


def test_nodes_as_text(client: TestClient, as_role: RoleHeaders, inventory: None) -> None:
    r = client.get("/info/nodes", params={"format": "text"}, headers=as_role("viewer"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    lines = r.text.splitlines()
    assert r.text.endswith("\n")
    assert lines[0].split() == [w for h in HEADERS for w in h.split()]
    # Aligned: every column starts where its header does.
    rows = {row[0]: row for row in parse(r.text)}
    assert rows["m1"] == [
        "m1",
        "127.0.0.1:22",
        "root",
        "master",
        "commissioned",
        "yes",
        "2026-11-23 10:00:00",
        "rack=r1,zone=a",
    ]
    assert rows["w1"][1:3] == ["[::1]:2222", "ops"]
    assert rows["w1"][5:7] == ["MISSING", "-"]
    # Absent from the cluster as it should be: not news.
    assert rows["w2"][4:] == ["registered", "no", "-", "-"]
    assert lines[0].rstrip() == lines[0]  # no trailing spaces to trip a diff


def test_accept_text_plain_is_the_same_table(
    client: TestClient, as_role: RoleHeaders, inventory: None
) -> None:
    viewer = as_role("viewer")
    by_query = client.get(
        "/info/nodes", params={"format": "text", "group": "worker"}, headers=viewer
    )
    by_accept = client.get(
        "/info/nodes", params={"group": "worker"}, headers={**viewer, "Accept": "text/plain"}
    )
    assert by_accept.status_code == 200
    assert by_accept.text == by_query.text
    assert [row[0] for row in parse(by_accept.text)] == ["w1", "w2"]
    # JSON stays the default, and format=json wins over Accept.
    assert client.get("/info/nodes", headers=viewer).json()[0]["name"] == "m1"
    r = client.get(
        "/info/nodes", params={"format": "json"}, headers={**viewer, "Accept": "text/plain"}
    )
    assert r.headers["content-type"] == "application/json"


def test_one_node_as_text_with_its_vars_on_one_line(
    admin: TestClient, as_role: RoleHeaders, inventory: None
) -> None:
    r = admin.get("/info/node/w2", params={"format": "text"})
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert parse("\n".join(lines[:2]))[0][:5] == [
        "w2",
        "127.0.0.1:22",
        "root",
        "worker",
        "registered",
    ]
    assert lines[2] == "vars: motd=first line second line,port=8080"
    assert len(lines) == 3
    # Below admin the values stay hidden in text as in JSON.
    r = admin.get("/info/node/w2", headers={**as_role("viewer"), "Accept": "text/plain"})
    assert r.text.splitlines()[2] == "vars: motd=<redacted>,port=<redacted>"
    # A node without vars: its row only.
    assert len(admin.get("/info/node/m1", params={"format": "text"}).text.splitlines()) == 2


def test_bad_format_and_unknown_node(admin: TestClient, inventory: None) -> None:
    for path in ("/info/nodes", "/info/node/w1"):
        r = admin.get(path, params={"format": "csv"})
        assert r.status_code == 422
        assert "'json' or 'text'" in r.json()["message"]
    r = admin.get("/info/node/nope", params={"format": "text"})
    assert r.status_code == 404
    assert r.json()["error"] == "NodeNotFound"


def test_missing_is_news_only_where_the_drift_watch_expects_the_node(
    client: TestClient, as_role: RoleHeaders, inventory: None, db: Database
) -> None:
    """The drift watch saw w1 absent while commissioned: MISSING. Once a job holds it (an update),
    what the watch last saw predates the job: "no", as the console and the missing-nodes metric
    count it."""
    text = client.get("/info/nodes", params={"format": "text"}, headers=as_role("viewer")).text
    assert {row[0]: row[5] for row in parse(text)} == {"m1": "yes", "w1": "MISSING", "w2": "no"}
    for state, shown in (("updating", "no"), ("maintenance", "MISSING"), ("failed", "no")):
        with db.write() as session:
            session.execute(sa.update(Node).where(Node.name == "w1").values(state=state))
        text = client.get("/info/nodes", params={"format": "text"}, headers=as_role("viewer")).text
        assert parse(text)[1][4:6] == [state, shown]
