"""`POST /verbosity`: one change to many nodes, concurrently, with a result per node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db import Database
from app.nodes.models import Node
from app.timeline.models import TimelineEvent
from tests.conftest import node_body
from tests.verbosity.conftest import TOKEN, set_state
from tests.verbosity.emulator import Emulator, free_port


def register_many(
    admin: TestClient, nodes: dict[str, int], group: str = "worker", state: str = "commissioned"
) -> None:
    body = [
        node_body(
            name,
            host_group=group,
            vars={"clusterm_verbosity": {"kubelet": {"port": port}}},
        )
        for name, port in nodes.items()
    ]
    r = admin.post("/nodes", json=body)
    assert r.status_code == 201, r.text
    set_state(admin, state, *nodes)


def by_node(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["node"]: r for r in body["results"]}


# A generous timeout: on a loaded CI machine 200 TLS handshakes can take seconds, and this test
# is about the per-node results, not about timeouts (test_proxy covers 504).
@pytest.mark.parametrize("settings_overrides", [{"verbosity_timeout_s": 30.0}])
def test_fan_out_to_200_nodes_with_some_failing(
    settings_overrides: object, admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = emulators()
    modes = {"n005": "disabled", "n017": "forbidden", "n123": "disabled404"}
    endpoints = {
        f"n{i:03d}": emulator.add(f"n{i:03d}", token=TOKEN, mode=modes.get(f"n{i:03d}", "ok"))
        for i in range(197)
    }
    emulator.start()
    ports = {name: e.port for name, e in endpoints.items()}
    ports.update({"n197": free_port(), "n198": free_port()})  # nobody listens there
    register_many(admin, ports)
    emulator.by_name["n042"].level = 1

    r = admin.post("/verbosity", json={"component": "kubelet", "nodes": "all", "level": 4})
    assert r.status_code == 207, r.text
    body = r.json()
    assert (body["succeeded"], body["failed"]) == (194, 5)
    results = by_node(body)
    assert len(results) == 199
    assert results["n000"] == {
        "node": "n000",
        "component": "kubelet",
        "ok": True,
        "status": 200,
        "message": "successfully set klog.logging.verbosity to 4",
        "previous_level": 2,
        "level": 4,
    }
    assert (results["n005"]["status"], results["n005"]["ok"]) == (405, False)
    assert "disabled" in results["n005"]["message"]
    assert results["n017"]["status"] == 403
    assert results["n123"]["status"] == 404
    assert results["n197"]["status"] == 502
    assert "cannot connect" in results["n198"]["message"]
    levels = {name: e.level for name, e in endpoints.items()}
    assert {n for n, level in levels.items() if level != 4} == {"n005", "n017", "n123"}
    assert all(len(e.requests) == 1 for e in endpoints.values())

    known = admin.get("/verbosity", params={"component": "kubelet"}).json()
    assert len(known) == 194
    assert {k["level"] for k in known} == {4}
    events = admin.get(
        "/info/timeline", params={"action": "verbosity", "result": "failed", "limit": 100}
    ).json()["items"]
    assert sorted(e["node"] for e in events) == ["n005", "n017", "n123", "n197", "n198"]


def test_status_says_all_or_none(admin: TestClient, emulators: Callable[..., Emulator]) -> None:
    emulator = emulators()
    endpoints = {name: emulator.add(name, token=TOKEN) for name in ("a1", "a2")}
    emulator.start()
    register_many(admin, {n: e.port for n, e in endpoints.items()})
    register_many(admin, {"b1": free_port(), "b2": free_port()}, group="master")

    r = admin.post("/verbosity", json={"component": "kubelet", "nodes": ["a1", "a2"], "level": 3})
    assert r.status_code == 200
    assert r.json()["failed"] == 0
    r = admin.post(
        "/verbosity", json={"component": "kubelet", "nodes": {"group": "master"}, "level": 3}
    )
    assert r.status_code == 502
    assert [x["node"] for x in r.json()["results"]] == ["b1", "b2"]
    assert r.json()["succeeded"] == 0


def test_unknown_nodes_refuse_the_whole_request(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = emulators()
    endpoint = emulator.add("a1", token=TOKEN)
    emulator.start()
    register_many(admin, {"a1": endpoint.port})
    r = admin.post(
        "/verbosity", json={"component": "kubelet", "nodes": ["a1", "zz", "yy"], "level": 3}
    )
    assert r.status_code == 404
    assert r.json()["nodes"] == ["yy", "zz"]
    assert emulator.total_requests == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"component": "etcd", "nodes": "all", "level": 3}, "component"),
        ({"component": "kubelet", "nodes": "every", "level": 3}, "nodes"),
        ({"component": "kubelet", "nodes": [], "level": 3}, "nodes"),
        ({"component": "kubelet", "nodes": ["a1", "a1"], "level": 3}, "nodes"),
        ({"component": "kubelet", "nodes": {"group": "db"}, "level": 3}, "nodes"),
        ({"component": "kubelet", "nodes": "all", "level": -1}, "level"),
        ({"component": "kubelet", "nodes": "all", "level": "4"}, "level"),
        ({"component": "kubelet", "nodes": "all", "level": 2147483648}, "level"),
        ({"component": "kubelet", "nodes": "all", "level": 3, "ttl": "5 minutes"}, "ttl"),
        ({"component": "kubelet", "nodes": "all", "level": 3, "ttl": "30h"}, "ttl"),
        ({"component": "kubelet", "nodes": "all", "level": 3, "extra": 1}, "extra"),
    ],
)
def test_bad_requests_name_the_field(
    admin: TestClient, emulators: Callable[..., Emulator], body: dict[str, Any], field: str
) -> None:
    emulator = emulators()
    endpoint = emulator.add("a1", token=TOKEN)
    emulator.start()
    register_many(admin, {"a1": endpoint.port})
    r = admin.post("/verbosity", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]
    assert emulator.total_requests == 0


def test_all_skips_decommissioned_nodes_and_control_plane_targets_masters(
    admin: TestClient, emulators: Callable[..., Emulator], db: Database
) -> None:
    emulator = emulators()
    endpoints = {name: emulator.add(name, token=TOKEN) for name in ("m1", "w1", "w2")}
    emulator.start()
    for name, endpoint in endpoints.items():
        ports = {"kubelet": endpoint.port, "kube-scheduler": endpoint.port}
        group = "master" if name.startswith("m") else "worker"
        body = node_body(name, host_group=group, vars={"clusterm_verbosity": ports})
        assert admin.post("/nodes", json=body).status_code == 201
    set_state(admin, "commissioned", "m1", "w1")
    with db.write() as session:
        session.execute(sa.update(Node).where(Node.name == "w2").values(state="decommissioned"))
    r = admin.post("/verbosity", json={"component": "kubelet", "nodes": "all", "level": 3})
    assert [x["node"] for x in r.json()["results"]] == ["m1", "w1"]
    r = admin.post("/verbosity", json={"component": "kube-scheduler", "nodes": "all", "level": 5})
    assert [x["node"] for x in r.json()["results"]] == ["m1"]
    assert endpoints["w2"].requests == []


def test_each_nodes_event_is_linked_to_its_node(
    admin: TestClient, emulators: Callable[..., Emulator], db: Database
) -> None:
    """The events of a fan-out are looked up with their nodes in one query, not one by one: each
    is still linked to its node's row, so it stays in the node's history."""
    emulator = emulators()
    endpoints = {name: emulator.add(name, token=TOKEN) for name in ("c1", "c2", "c3")}
    emulator.start()
    register_many(admin, {n: e.port for n, e in endpoints.items()})

    r = admin.post("/verbosity", json={"component": "kubelet", "nodes": "all", "level": 5})
    assert r.status_code == 200, r.text
    with db.read() as session:
        ids = {row.name: row.id for row in session.execute(sa.select(Node.name, Node.id))}
        linked = session.execute(
            sa.select(TimelineEvent.node_name, TimelineEvent.node_id).where(
                TimelineEvent.action == "verbosity"
            )
        ).all()
    assert sorted(linked) == sorted((name, ids[name]) for name in endpoints)
    history = admin.get("/info/node/c2/history").json()["items"]
    assert [(e["action"], e["to_state"]) for e in history[:1]] == [("verbosity", "5")]
