"""Bad input of every kind: a 4xx naming the field and the reason, and nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from tests.conftest import node_body
from tests.nodes.test_api import node_count

BAD_NODES: list[tuple[str, Any, str, str]] = [
    # (case, body, field named, words in the reason)
    ("space in name", node_body("bad name"), "name", "DNS-1123"),
    ("leading dash", node_body("-n1"), "name", "DNS-1123"),
    ("300 characters", node_body("a" * 300), "name", "at most 253"),
    ("label over 63", node_body("a" * 64 + ".b"), "name", "DNS-1123"),
    ("non-ASCII", node_body("nœud"), "name", "ASCII"),
    ("uppercase", node_body("Node1"), "name", "lowercase"),
    ("empty name", node_body(""), "name", "DNS-1123"),
    ("name not a string", {"name": 1, "address": "127.0.0.1"}, "name", "string"),
    ("missing address", {"name": "n1"}, "address", "required"),
    ("bad address", node_body("n1", address="not an address!"), "address", "IP address"),
    ("port as string", node_body("n1", ssh_port="22"), "ssh_port", "integer"),
    ("port 0", node_body("n1", ssh_port=0), "ssh_port", "greater than or equal to 1"),
    ("port 70000", node_body("n1", ssh_port=70000), "ssh_port", "less than or equal"),
    ("bad user", node_body("n1", ssh_user="root; rm -rf /"), "ssh_user", "POSIX"),
    ("bad group", node_body("n1", host_group="leader"), "host_group", "master"),
    ("unknown field", node_body("n1", colour="blue"), "colour", "unknown field"),
    ("state is not settable", node_body("n1", state="commissioned"), "state", "unknown field"),
    ("vars a list", node_body("n1", vars=[1, 2]), "vars", "dictionary"),
    ("vars a string", node_body("n1", vars="{}"), "vars", "dictionary"),
    ("bad var name", node_body("n1", vars={"a-b": 1}), "vars", "Ansible variable"),
    ("labels not strings", node_body("n1", labels={"a": 1}), "labels.a", "string"),
    ("bad label key", node_body("n1", labels={"-a": "b"}), "labels", "label key"),
    ("array item bad", [node_body("n1"), node_body("N 2")], "nodes[1].name", "lowercase"),
    ("array of non-objects", [1], "nodes[0]", "NodeCreate"),
    ("body a number", 42, "body", "node object or an array"),
]


@pytest.mark.parametrize(
    ("case", "body", "field", "reason"), BAD_NODES, ids=[c[0] for c in BAD_NODES]
)
def test_bad_node_is_422_naming_the_field(
    admin: TestClient, db: Database, case: str, body: Any, field: str, reason: str
) -> None:
    r = admin.post("/nodes", json=body)
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["error"] == "ValidationFailed"
    named = {f["field"]: f["reason"] for f in out["fields"]}
    assert field in named, named
    assert reason.lower() in named[field].lower(), named[field]
    assert field in out["message"]
    assert node_count(db) == 0


def test_duplicate_in_one_batch_is_refused_whole(admin: TestClient, db: Database) -> None:
    r = admin.post("/nodes", json=[node_body("n1"), node_body("n2"), node_body("n1")])
    assert r.status_code == 422
    assert r.json()["field"] == "nodes[2].name"
    assert "given twice" in r.json()["message"]
    assert node_count(db) == 0


def test_empty_array_is_refused(admin: TestClient) -> None:
    r = admin.post("/nodes", json=[])
    assert r.status_code == 422
    assert "no node" in r.json()["message"]


def test_invalid_json_is_422(admin: TestClient, db: Database) -> None:
    r = admin.post(
        "/nodes", content=b'{"name": "n1",', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"] == "ValidationFailed"
    assert "JSON" in r.json()["message"]
    assert node_count(db) == 0


def test_form_encoded_body_says_to_send_json(admin: TestClient) -> None:
    # What `curl -d '{...}'` sends when the user forgets the content type.
    r = admin.post(
        "/nodes",
        content=json.dumps(node_body("n1")),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422
    assert "Content-Type: application/json" in r.json()["message"]


def test_body_over_the_limit_is_413_and_stores_nothing(admin: TestClient, db: Database) -> None:
    big = node_body("n1", vars={"blob": "x" * 2_000_000})
    r = admin.post("/nodes", json=big)
    assert r.status_code == 413
    assert r.json()["error"] == "PayloadTooLarge"
    assert "max_body_bytes" in r.json()["message"]
    assert node_count(db) == 0


def test_streamed_body_over_the_limit_is_413(admin: TestClient, db: Database) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65536

    r = admin.post("/nodes", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert node_count(db) == 0


def test_vars_over_64k_are_refused(admin: TestClient, db: Database) -> None:
    r = admin.post("/nodes", json=node_body("n1", vars={"blob": "x" * 70_000}))
    assert r.status_code == 422
    assert "vars" in r.json()["message"]
    assert node_count(db) == 0


def test_bad_patch_changes_nothing(admin: TestClient) -> None:
    admin.post("/nodes", json=node_body("n1"))
    before = admin.get("/info/node/n1").json()
    for change in (
        {"ssh_port": "22"},
        {"vars": [1]},
        {"name": "n2"},
        {"host_group": "boss"},
        {"ssh_port": 2222, "bogus": 1},
    ):
        r = admin.patch("/nodes/n1", json=change)
        assert r.status_code == 422, (change, r.text)
    assert admin.get("/info/node/n1").json() == before


def test_maintenance_body_must_be_a_boolean(admin: TestClient) -> None:
    admin.post("/nodes", json=node_body("n1"))
    r = admin.put("/nodes/n1/maintenance", json={"enabled": "yes"})
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "enabled"


def test_unknown_route_and_method_use_the_error_shape(admin: TestClient) -> None:
    r = admin.get("/no/such/route")
    assert r.status_code == 404
    assert r.json()["error"] == "NotFound"
    r = admin.put("/info/nodes")
    assert r.status_code == 405
    assert r.json()["error"] == "MethodNotAllowed"


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 200_000 + b"]" * 200_000,  # deeper than the JSON parser goes
        b"\xff\xfe",  # not UTF-8
        b"1e999999",
        b'{"name": "n1", "address": "10.0.0.1", "ssh_port": 1e400}',
    ],
    ids=["too deep", "not utf-8", "huge number", "port overflow"],
)
def test_hostile_bodies_get_a_4xx_not_a_500(admin: TestClient, db: Database, raw: bytes) -> None:
    r = admin.post("/nodes", content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["message"]
    assert node_count(db) == 0
