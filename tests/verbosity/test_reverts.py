"""Automatic reverts (also across a restart), resets, the list of known levels, the audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.polling import wait_until
from tests.verbosity.conftest import TOKEN, register, set_state
from tests.verbosity.emulator import Emulator


def setup_nodes(
    admin: TestClient, emulators: Callable[..., Emulator], *names: str
) -> dict[str, Any]:
    emulator = emulators()
    endpoints = {name: emulator.add(name, token=TOKEN) for name in names}
    emulator.start()
    for name, endpoint in endpoints.items():
        register(admin, name, {"kubelet": endpoint.port})
    return endpoints


def change(client: TestClient, nodes: Any, level: int, ttl: str | None = None) -> Any:
    body: dict[str, Any] = {"component": "kubelet", "nodes": nodes, "level": level}
    if ttl is not None:
        body["ttl"] = ttl
    r = client.post("/verbosity", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def known(client: TestClient) -> dict[str, dict[str, Any]]:
    return {k["node"]: k for k in client.get("/verbosity").json()}


def events(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    query = {"action": "verbosity", "limit": 100, **params}
    items: list[dict[str, Any]] = client.get("/info/timeline", params=query).json()["items"]
    return items


def test_a_ttl_reverts_to_the_level_before(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    nodes = setup_nodes(admin, emulators, "n1")
    report = change(admin, ["n1"], 5, "1s")
    assert report["ttl_seconds"] == 1
    assert report["reverts_at"] is not None
    assert nodes["n1"].level == 5
    row = known(admin)["n1"]
    assert (row["level"], row["revert_to"], row["set_by"]) == (5, 2, "admin")
    wait_until(lambda: nodes["n1"].level == 2, timeout_s=10, what="n1's component back at level 2")
    wait_until(
        lambda: known(admin)["n1"]["reverts_at"] is None,
        timeout_s=10,
        what="n1's revert recorded as done",
    )
    row = known(admin)["n1"]
    assert (row["level"], row["previous_level"], row["set_by"]) == (2, 5, "clusterm")
    reverted = events(admin, reason="VerbosityReverted")
    assert len(reverted) == 1
    event = reverted[0]
    assert (event["node"], event["actor"], event["from_state"], event["to_state"]) == (
        "n1",
        "clusterm",
        "5",
        "2",
    )
    assert event["details"]["component"] == "kubelet"
    assert event["details"]["requested_by"] == "admin"
    assert event["result"] == "succeeded"
    set_event = events(admin, reason="VerbositySet")[0]
    assert (set_event["actor"], set_event["from_state"], set_event["to_state"]) == (
        "admin",
        "2",
        "5",
    )


def test_a_new_change_replaces_the_pending_revert(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    nodes = setup_nodes(admin, emulators, "n1", "n2")
    change(admin, ["n1", "n2"], 3, "0")  # permanent: the level to come back to
    change(admin, ["n1", "n2"], 4, "1h")
    change(admin, ["n1"], 6, "1s")  # replaces n1's revert, keeps its destination (3, not 4)
    change(admin, ["n2"], 5, "0")  # a permanent change cancels n2's revert
    wait_until(lambda: nodes["n1"].level == 3, timeout_s=10, what="n1's component at level 3")
    # The level is recorded after it is sent: wait for the record too.
    wait_until(
        lambda: known(admin)["n1"]["reverts_at"] is None,
        timeout_s=10,
        what="n1's revert recorded as done",
    )
    rows = known(admin)
    assert (rows["n1"]["level"], rows["n1"]["reverts_at"]) == (3, None)
    assert (rows["n2"]["level"], rows["n2"]["reverts_at"], rows["n2"]["revert_to"]) == (
        5,
        None,
        None,
    )
    assert nodes["n2"].level == 5


def test_a_pending_revert_survives_a_restart(
    admin: TestClient, emulators: Callable[..., Emulator], settings: Settings
) -> None:
    nodes = setup_nodes(admin, emulators, "n1")
    with TestClient(create_app(settings), headers=dict(admin.headers)) as first:
        change(first, ["n1"], 5, "2s")
    # The daemon that scheduled it is gone, and the level is still raised.
    assert nodes["n1"].level == 5
    puts_before = nodes["n1"].puts
    with TestClient(create_app(settings), headers=dict(admin.headers)) as second:
        wait_until(
            lambda: nodes["n1"].level == 2, timeout_s=10, what="n1's component back at level 2"
        )
        assert nodes["n1"].puts == puts_before + 1
        wait_until(
            lambda: known(second)["n1"]["reverts_at"] is None,
            timeout_s=10,
            what="n1's revert recorded as done",
        )
        assert len(events(second, reason="VerbosityReverted")) == 1


def test_a_failed_revert_is_retried_and_audited(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    nodes = setup_nodes(admin, emulators, "n1")
    change(admin, ["n1"], 4, "1s")
    nodes["n1"].mode = "disabled"
    wait_until(
        lambda: known(admin)["n1"]["revert_attempts"] >= 1,
        timeout_s=10,
        what="a revert attempt on n1",
    )
    row = known(admin)["n1"]
    assert row["reverts_at"] is not None
    assert "kubelet debug flags handler is disabled" in row["last_error"]
    retrying = events(admin, result="retrying")
    assert retrying[0]["severity"] == "warning"
    assert retrying[0]["attempt"] >= 1
    nodes["n1"].mode = "ok"
    wait_until(lambda: nodes["n1"].level == 2, timeout_s=10, what="n1's component back at level 2")
    wait_until(
        lambda: known(admin)["n1"]["last_error"] is None,
        timeout_s=10,
        what="n1's last_error cleared",
    )


def test_delete_reverts_now(admin: TestClient, emulators: Callable[..., Emulator]) -> None:
    nodes = setup_nodes(admin, emulators, "n1", "n2", "n3")
    change(admin, ["n1", "n2", "n3"], 4, "1h")
    r = admin.delete("/verbosity/kubelet/n1")
    assert r.status_code == 200
    assert r.json()["results"][0]["level"] == 2
    assert nodes["n1"].level == 2
    assert known(admin)["n1"]["reverts_at"] is None
    # Reset all: every raised level, here n2 and n3.
    r = admin.delete("/verbosity")
    assert r.status_code == 200
    assert sorted(x["node"] for x in r.json()["results"]) == ["n2", "n3"]
    assert [e.level for e in nodes.values()] == [2, 2, 2]
    assert admin.delete("/verbosity").json()["results"] == []
    resets = events(admin, reason="VerbosityReset")
    assert {e["node"] for e in resets} == {"n1", "n2", "n3"}
    assert all(e["actor"] == "admin" and e["to_state"] == "2" for e in resets)


def test_reset_of_a_node_that_left_the_inventory_forgets_it(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    setup_nodes(admin, emulators, "n1")
    change(admin, ["n1"], 4, "1h")
    set_state(admin, "failed", "n1")  # a node in the cluster cannot be deleted
    assert admin.delete("/nodes/n1").status_code == 204
    r = admin.delete("/verbosity")
    assert r.status_code == 502
    assert "no longer in the inventory" in r.json()["results"][0]["message"]
    assert known(admin) == {}


def test_known_levels_need_only_a_viewer(
    client: TestClient,
    admin: TestClient,
    emulators: Callable[..., Emulator],
    as_role: Callable[[str], dict[str, str]],
) -> None:
    setup_nodes(admin, emulators, "n1")
    change(admin, ["n1"], 4)
    rows = client.get("/verbosity", headers=as_role("viewer")).json()
    assert rows[0]["level"] == 4
    assert rows[0]["baseline_level"] == 2
    assert rows[0]["reverts_at"] is not None  # the default ttl (15 min) applies
    assert client.delete("/verbosity", headers=as_role("viewer")).status_code == 403
    assert (
        client.get(
            "/verbosity", params={"component": "etcd"}, headers=as_role("viewer")
        ).status_code
        == 404
    )
