"""Bad input of every kind: a 4xx naming the field and the reason, and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Callable
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


# --- addresses: IPv4, IPv6 (a zone id of at most 15 of [A-Za-z0-9_.-]), DNS names ---------------

GOOD_ADDRESSES = [
    ("10.0.0.7", "10.0.0.7"),
    ("2001:db8::7", "2001:db8::7"),
    ("2001:DB8:0::7", "2001:db8::7"),  # stored in its canonical form
    ("fe80::1%eth0", "fe80::1%eth0"),
    ("fe80::1%1", "fe80::1%1"),
    ("fe80::1%br-0.vlan_7", "fe80::1%br-0.vlan_7"),
    ("fe80::1%" + "a" * 15, "fe80::1%" + "a" * 15),
    ("node-1.example.com", "node-1.example.com"),
    ("node-1.example.com.", "node-1.example.com."),
    ("localhost", "localhost"),
]

BAD_ADDRESSES = [
    # (case, address, words in the reason)
    ("template in a zone id", "::1%{{ lookup('pipe','id') }}", "zone id"),
    ("URL in a zone id", "::1%]@127.0.0.2:81#", "zone id"),
    ("zone id of 16", "fe80::1%" + "a" * 16, "zone id"),
    ("empty zone id", "fe80::1%", "zone id"),
    ("space in zone id", "fe80::1%eth 0", "zone id"),
    ("newline in zone id", "fe80::1%eth0\n", "zone id"),
    ("zone id on IPv4", "10.0.0.7%eth0", "neither an IP address nor a DNS name"),
    ("port after a zone id", "fe80::1%eth0:22", "zone id"),
    ("IPv6 broken", "2001:db8:::7", "not a valid IPv6 address"),
    ("IPv4 out of range", "10.0.0.256", "not an IPv4 address"),
    ("IPv4 short form", "127.1", "not an IPv4 address"),
    ("IPv4 as one number", "2130706433", "not an IPv4 address"),
    ("IPv4 in hex", "0x7f000001", "not an IPv4 address"),
    ("IPv4 leading zero", "010.0.0.7", "not an IPv4 address"),
    ("newline after a name", "node1\n", "neither an IP address nor a DNS name"),
    ("NUL in a name", "node1\x00.example.com", "neither an IP address nor a DNS name"),
    ("host and two ports", "node1:22:22", "not a valid IPv6 address"),
    ("user@host", "root@node1", "neither an IP address nor a DNS name"),
    ("label over 63", "a" * 64 + ".example.com", "neither an IP address nor a DNS name"),
    ("empty", "", "neither an IP address nor a DNS name"),
    ("non-ASCII", "nœud.example.com", "ASCII"),
    ("254 characters", ("a" * 62 + ".") * 4 + "ab", "at most 253"),
]


@pytest.mark.parametrize(("given", "stored"), GOOD_ADDRESSES, ids=[a for a, _ in GOOD_ADDRESSES])
def test_good_addresses_are_stored(admin: TestClient, given: str, stored: str) -> None:
    r = admin.post("/nodes", json=node_body("n1", address=given))
    assert r.status_code == 201, r.text
    assert admin.get("/info/node/n1").json()["address"] == stored


@pytest.mark.parametrize(
    ("case", "address", "reason"), BAD_ADDRESSES, ids=[c[0] for c in BAD_ADDRESSES]
)
def test_bad_addresses_are_refused_everywhere(
    admin: TestClient,
    db: Database,
    as_role: Callable[[str], dict[str, str]],
    case: str,
    address: str,
    reason: str,
) -> None:
    r = admin.post("/nodes", json=node_body("n1", address=address))
    assert r.status_code == 422, r.text
    named = {f["field"]: f["reason"] for f in r.json()["fields"]}
    assert reason.lower() in named["address"].lower(), named
    assert node_count(db) == 0

    assert admin.post("/nodes", json=node_body("n1")).status_code == 201
    r = admin.patch("/nodes/n1", json={"address": address})
    assert r.status_code == 422, r.text
    assert admin.get("/info/node/n1").json()["address"] == "127.0.0.1"

    # A discover target is checked by the same rule, before any job exists.
    r = admin.post("/discover/nodes", json={"addrs": [address]}, headers=as_role("operator"))
    assert r.status_code == 422, r.text
    assert admin.get("/jobs").json() == []


# --- vars: depth, numbers JSON cannot hold, NUL characters --------------------------------------


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_vars_may_nest_32_levels_and_read_back(admin: TestClient) -> None:
    body = node_body("n1", vars={"deep": nested(32), "list": [[[1]]], "big": 10**30})
    assert admin.post("/nodes", json=body).status_code == 201
    assert admin.get("/info/nodes").status_code == 200
    assert admin.get("/info/node/n1").json()["vars"]["deep"] == nested(32)


@pytest.mark.parametrize("depth", [33, 300, 900])
def test_vars_nested_deeper_are_refused(admin: TestClient, db: Database, depth: int) -> None:
    # Sent as text: the test's own JSON encoder would stop at Python's recursion limit.
    raw = '{"name": "n1", "address": "10.0.0.7", "vars": {"deep": ' + '{"k": ' * depth
    raw += "1" + "}" * (depth + 2)
    r = admin.post("/nodes", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "nested deeper than 32 levels" in r.json()["message"]
    assert node_count(db) == 0
    raw = '{"name": "n1", "address": "10.0.0.7", "vars": {"l": ' + "[" * depth + "]" * depth
    r = admin.post("/nodes", content=raw + "}}", headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert admin.post("/nodes", json=node_body("n1")).status_code == 201
    raw = '{"vars": {"deep": ' + '{"k": ' * depth + "1" + "}" * (depth + 2)
    r = admin.patch("/nodes/n1", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert admin.get("/info/nodes").status_code == 200


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_numbers_json_cannot_hold_are_refused(admin: TestClient, db: Database, number: str) -> None:
    raw = f'{{"name": "n1", "address": "10.0.0.7", "vars": {{"a": {{"b": [{number}]}}}}}}'
    r = admin.post("/nodes", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "vars" in r.json()["message"]
    assert "finite number" in r.json()["message"]
    assert node_count(db) == 0


@pytest.mark.parametrize(
    "variables",
    [{"a": "x\x00y"}, {"a": {"k\x00": 1}}, {"a": ["\x00"]}],
    ids=["value", "key", "item"],
)
def test_nul_characters_in_vars_are_refused(
    admin: TestClient, db: Database, variables: dict[str, Any]
) -> None:
    r = admin.post("/nodes", json=node_body("n1", vars=variables))
    assert r.status_code == 422, r.text
    assert "NUL" in r.json()["message"]
    assert node_count(db) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "n1\n"), ("name", "n1\x00"), ("ssh_user", "root\n"), ("labels", {"a": "b\n"})],
    ids=["name newline", "name NUL", "user newline", "label newline"],
)
def test_a_trailing_newline_is_not_part_of_a_valid_value(
    admin: TestClient, db: Database, field: str, value: Any
) -> None:
    # `$` in a regular expression also matches before a final newline; the checks match whole.
    body = {**node_body("n1"), field: value}
    r = admin.post("/nodes", json=body)
    assert r.status_code == 422, r.text
    assert node_count(db) == 0
