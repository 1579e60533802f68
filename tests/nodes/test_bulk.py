"""Registering an inventory in one request, and reading a large one back.

The listing and the array answer are written without a NodeRead per node: these tests hold them
to the very bytes FastAPI writes for `list[NodeRead]`, for every role, and hold a batch to all or
nothing at sizes beyond one IN (...) list.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from app.auth.vocabulary import Role
from app.config import Settings
from app.db import Database
from app.nodes import listing, service, views
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate, NodeRead
from app.timeline.models import TimelineEvent
from tests.conftest import node_body
from tests.nodes.test_api import node_count

_AS_FASTAPI = TypeAdapter(list[NodeRead])


def inventory(count: int) -> list[dict[str, Any]]:
    """Nodes as an operator imports them: a DNS name, labels, a var."""
    return [
        {
            "name": f"node-{i:05d}.dc1.example.com",
            "address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            "ssh_user": "ubuntu",
            "host_group": "master" if i < 3 else "worker",
            "labels": {"rack": f"r{i // 40:03d}", "zone": "a" if i % 2 else "b"},
            "vars": {"ansible_become": True},
        }
        for i in range(count)
    ]


def register_events(db: Database) -> list[TimelineEvent]:
    with db.read() as session:
        query = sa.select(TimelineEvent).where(TimelineEvent.action == "register")
        return list(session.scalars(query.order_by(TimelineEvent.id)))


def as_fastapi_writes(db: Database, role: Role, **where: Any) -> bytes:
    """What the route wrote before it skipped the models: ORM rows through `read_node`, then
    FastAPI's serialisation of its response model."""
    with db.read() as session:
        rows = service.list_nodes(session=session, **where)
        return _AS_FASTAPI.dump_json([service.read_node(node=n, role=role) for n in rows])


VARIED = [
    node_body("a1", host_group="master", labels={"zone": "b", "rack": "r1"}),
    node_body(
        "b2",
        address="fe80::1%eth0",
        ssh_port=2222,
        ssh_user="ops",
        vars={"z": 1.5, "a": [1, {"b": None}], "big": 10**30, "text": "é \u2028 <&>", "t": True},
    ),
    node_body("c3.example.com", address="c3.example.com", labels={"x.io/role": "db"}),
]


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_listing_is_byte_for_byte_what_the_response_model_wrote(
    admin: TestClient, db: Database, as_role: Any, role: str
) -> None:
    assert admin.post("/nodes", json=VARIED).status_code == 201
    with db.write() as session:  # a drift check has seen one, and missed another
        now = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.UTC)
        rows = service.find_nodes(session=session, names=["a1", "b2"])
        service.mark_seen(node=rows["a1"], now=now)
        service.mark_missing(node=rows["b2"], since=now)
    headers = as_role(role)
    for query, where in (("", {}), ("?group=master", {"host_group": "master"})):
        got = admin.get(f"/info/nodes{query}", headers=headers)
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/json"
        assert got.content == as_fastapi_writes(db, Role(role), **where)
    assert admin.get("/info/nodes?state=failed", headers=headers).content == b"[]"
    with db.read() as session:
        models = [
            service.read_node(node=n, role=Role(role)) for n in service.list_nodes(session=session)
        ]
        table = views.nodes_text([dict(m) for m in models])
    assert admin.get("/info/nodes?format=text", headers=headers).text == table


def test_a_listing_after_any_change_shows_the_change(admin: TestClient, db: Database) -> None:
    """Each node's JSON is kept between listings, by its row's exact values: any change to the
    row (through the API, a drift check, another replica's write) is a new entry."""
    assert admin.post("/nodes", json=VARIED).status_code == 201
    admin.get("/info/nodes")
    assert admin.patch("/nodes/a1", json={"labels": {"zone": "c"}}).status_code == 200
    with db.write() as session:
        now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        service.mark_seen(node=service.get_node(session=session, name="b2"), now=now)
    with db.write() as session:  # as an older clusterm, or another replica, writes it
        session.execute(sa.update(Node).where(Node.name == "c3.example.com").values(ssh_port=23))
    got = admin.get("/info/nodes").json()
    assert got[0]["labels"] == {"zone": "c"}
    assert (got[1]["in_cluster"], got[1]["last_seen_at"]) == (True, "2026-01-02T03:04:05Z")
    assert got[2]["ssh_port"] == 23
    assert admin.get("/info/nodes").content == as_fastapi_writes(db, Role.ADMIN)


def test_the_kept_json_is_bounded(db: Database) -> None:
    with db.write() as session:
        service.register_nodes(
            session=session, nodes=[NodeCreate.model_validate(n) for n in inventory(30)], actor="t"
        )
    memo = listing.Memo(max_entries=25)
    query = sa.select(*listing.RAW_COLUMNS).order_by(Node.name)
    for _ in range(2):
        with db.read() as session:
            body = memo.listing(
                session=session, query=query, sees_values=True, as_read=service._as_read
            )
        assert body == as_fastapi_writes(db, Role.ADMIN)
        assert len(memo) <= 25


def test_the_array_answer_is_what_the_response_model_wrote(admin: TestClient, db: Database) -> None:
    created = admin.post("/nodes", json=VARIED)
    assert created.status_code == 201
    with db.read() as session:
        rows = service.find_nodes(session=session, names=[str(n["name"]) for n in VARIED])
        expected = [service.read_node(node=rows[str(n["name"])], role=Role.ADMIN) for n in VARIED]
    assert created.json() == json.loads(_AS_FASTAPI.dump_json(expected))
    # The maps keep the order they were sent in, on PostgreSQL's JSONB too.
    assert list(created.json()[0]["labels"]) == ["zone", "rack"]
    assert list(created.json()[1]["vars"]) == ["z", "a", "big", "text", "t"]


def test_5000_nodes_fit_the_default_body_limit_with_one_event_each(
    admin: TestClient, db: Database, settings: Settings
) -> None:
    nodes = inventory(5000)
    body = json.dumps(nodes).encode()
    assert len(body) < Settings.model_fields["max_body_bytes"].default == settings.max_body_bytes
    r = admin.post("/nodes", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text[:500]
    assert [n["name"] for n in r.json()] == [n["name"] for n in nodes]
    assert all(n["state"] == "registered" for n in r.json())
    events = register_events(db)
    assert [e.node_name for e in events] == [n["name"] for n in nodes]
    with db.read() as session:
        ids = {row.name: row.id for row in session.execute(sa.select(Node.name, Node.id))}
    assert all(e.node_id == ids[e.node_name] for e in events)
    assert events[0].details == {
        "address": "10.0.0.0",
        "ssh_port": 22,
        "ssh_user": "ubuntu",
        "host_group": "master",
        "labels": {"rack": "r000", "zone": "b"},
        "vars": ["ansible_become"],
    }
    text = admin.get("/info/nodes?format=text").text.splitlines()
    assert len(text) == 5001
    assert text[1].split() == [
        "node-00000.dc1.example.com",
        "10.0.0.0:22",
        "ubuntu",
        "master",
        "registered",
        "-",
        "-",
        "rack=r000,zone=b",
    ]


def test_one_bad_node_deep_in_a_batch_stores_nothing(admin: TestClient, db: Database) -> None:
    nodes = inventory(1500)
    nodes[1234]["address"] = "10.0.0.256"
    r = admin.post("/nodes", json=nodes)
    assert r.status_code == 422
    assert "nodes[1234].address" in r.json()["message"]
    assert node_count(db) == 0
    assert register_events(db) == []


def test_a_name_already_stored_refuses_the_batch_whoever_holds_it(
    admin: TestClient, db: Database
) -> None:
    """The existing name is past the first thousand (the check reads names a thousand at once)."""
    nodes = inventory(1500)
    assert admin.post("/nodes", json=nodes[1200]).status_code == 201
    r = admin.post("/nodes", json=nodes)
    assert r.status_code == 409
    assert r.json()["error"] == "NodeExists"
    assert nodes[1200]["name"] in r.json()["message"]
    assert node_count(db) == 1
    assert len(register_events(db)) == 1


def test_a_name_twice_in_a_large_batch_names_both_places(admin: TestClient, db: Database) -> None:
    nodes = inventory(1500)
    nodes[1400]["name"] = nodes[3]["name"]
    r = admin.post("/nodes", json=nodes)
    assert r.status_code == 422
    assert "nodes[1400].name" in r.json()["message"]
    assert "nodes[3]" in r.json()["message"]
    assert node_count(db) == 0
