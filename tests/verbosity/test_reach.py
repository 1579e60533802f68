"""Where a component's credentials may go: nodes of its host groups, in a state where it may run.

Every refusal is checked on the component's side too: the emulated endpoint must have received
nothing, so no credential left clusterm."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db import Database
from app.nodes.models import Node
from app.runtime import runtime_of
from tests.polling import wait_until
from tests.verbosity.conftest import TOKEN, register, set_state
from tests.verbosity.emulator import Emulator, Endpoint
from tests.verbosity.test_reverts import events, known

REACHABLE = ["provisioning", "commissioned", "updating", "maintenance", "decommissioning", "failed"]
UNREACHABLE = {"registered": "registered and never provisioned", "decommissioned": "decommissioned"}


def fleet(admin: TestClient, emulators: Callable[..., Emulator], **nodes: str) -> Emulator:
    """Nodes named after their group (m*: master, else worker) in the given states, each with a
    kubelet and a kube-scheduler endpoint of its own."""
    emulator = emulators()
    for name, state in nodes.items():
        ports = {
            "kubelet": emulator.add(name, token=TOKEN).port,
            "kube-scheduler": emulator.add(f"{name}-scheduler", token=TOKEN).port,
        }
        group = "master" if name.startswith("m") else "worker"
        register(admin, name, ports, group=group, state=state)
    return emulator.start()


@pytest.mark.parametrize("state", REACHABLE)
def test_a_node_that_may_run_the_component_is_reached(
    admin: TestClient, emulators: Callable[..., Emulator], state: str
) -> None:
    emulator = fleet(admin, emulators, w1=state)
    r = admin.put("/proxy/kubelet/w1/debug/flags/v", content=b"4")
    assert r.status_code == 200, r.text
    assert emulator.by_name["w1"].level == 4


@pytest.mark.parametrize("state", list(UNREACHABLE))
def test_a_node_that_cannot_run_it_is_409_with_nothing_sent(
    admin: TestClient, emulators: Callable[..., Emulator], state: str
) -> None:
    emulator = fleet(admin, emulators, w1=state, w2="commissioned")
    r = admin.put("/proxy/kubelet/w1/debug/flags/v", content=b"4")
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "Conflict"
    assert f"node 'w1' is {UNREACHABLE[state]}" in body["message"]
    assert "nothing was sent" in body["message"]
    assert body["nodes"] == [
        {"node": "w1", "host_group": "worker", "state": state, "reason": body["nodes"][0]["reason"]}
    ]
    # A fan-out naming it is refused whole, as for an unknown node.
    r = admin.post("/verbosity", json={"component": "kubelet", "nodes": ["w2", "w1"], "level": 4})
    assert r.status_code == 409, r.text
    assert [n["node"] for n in r.json()["nodes"]] == ["w1"]
    assert emulator.total_requests == 0
    assert known(admin) == {}
    assert events(admin) == []


def test_the_control_plane_is_reached_on_masters_only(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = fleet(admin, emulators, m1="commissioned", w1="commissioned")
    r = admin.put("/proxy/kube-scheduler/w1/debug/flags/v", content=b"4")
    assert r.status_code == 409, r.text
    message = r.json()["message"]
    assert "node 'w1' is a worker, and kube-scheduler runs on master nodes only" in message
    # A group outside the component's host groups selects nobody it may reach.
    body = {"component": "kube-scheduler", "nodes": {"group": "worker"}, "level": 4}
    r = admin.post("/verbosity", json=body)
    assert r.status_code == 409, r.text
    assert "is a worker" in r.json()["message"]
    assert emulator.total_requests == 0
    r = admin.put("/proxy/kube-scheduler/m1/debug/flags/v", content=b"4")
    assert r.status_code == 200, r.text
    assert emulator.by_name["m1-scheduler"].level == 4


@pytest.mark.parametrize(
    "settings_overrides", [{"verbosity_components": {"kube-proxy": {"host_groups": ["master"]}}}]
)
def test_the_host_groups_setting_decides(
    admin: TestClient, emulators: Callable[..., Emulator], settings_overrides: object
) -> None:
    emulator = emulators(ca=None)
    register(admin, "w1", {"kube-proxy": emulator.add("w1").port})
    emulator.start()
    r = admin.put("/proxy/kube-proxy/w1/debug/flags/v", content=b"4")
    assert r.status_code == 409
    assert "kube-proxy runs on master nodes only (host_groups)" in r.json()["message"]
    assert emulator.total_requests == 0


def test_all_and_groups_leave_out_what_cannot_run_it_and_say_so(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = fleet(
        admin,
        emulators,
        m1="commissioned",
        m2="registered",
        w1="failed",
        w2="decommissioned",
        w3="maintenance",
    )
    r = admin.post("/verbosity", json={"component": "kubelet", "nodes": "all", "level": 4})
    assert r.status_code == 200, r.text
    assert [x["node"] for x in r.json()["results"]] == ["m1", "w1", "w3"]
    skipped = {s["node"]: s["reason"] for s in r.json()["skipped"]}
    assert set(skipped) == {"m2", "w2"}
    assert "registered and never provisioned" in skipped["m2"]
    assert "decommissioned" in skipped["w2"]
    assert emulator.by_name["m2"].requests == emulator.by_name["w2"].requests == []

    body: dict[str, Any] = {"component": "kube-scheduler", "nodes": "all", "level": 5}
    r = admin.post("/verbosity", json=body)
    assert [x["node"] for x in r.json()["results"]] == ["m1"]
    assert [s["node"] for s in r.json()["skipped"]] == ["m2"]  # workers are not selected at all
    assert emulator.by_name["w1-scheduler"].requests == []

    set_state(admin, "registered", "m1")
    r = admin.post("/verbosity", json={**body, "nodes": {"group": "master"}})
    assert r.status_code == 409, r.text
    assert "nothing was sent" in r.json()["message"]


def two_relays_and_a_kubelet(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> tuple[dict[str, Endpoint], Endpoint]:
    """Masters m1 and m2, whose apiservers may relay kubelet calls, and a worker w1: registered."""
    emulator = emulators()
    apiservers = {name: emulator.add(name, token=TOKEN, relay=True) for name in ("m1", "m2")}
    kubelet = emulator.add("w1")
    emulator.start()
    register(admin, "m1", {"kube-apiserver": apiservers["m1"].port}, group="master")
    register(admin, "m2", {"kube-apiserver": apiservers["m2"].port}, group="master")
    register(admin, "w1")
    return apiservers, kubelet


@pytest.mark.parametrize(
    "settings_overrides", [{"verbosity_components": {"kubelet": {"via_apiserver": True}}}]
)
def test_the_apiserver_relay_is_a_master_in_the_cluster(
    admin: TestClient, emulators: Callable[..., Emulator], settings_overrides: object
) -> None:
    apiservers, kubelet = two_relays_and_a_kubelet(admin, emulators)
    for state in ("registered", "decommissioned", "failed", "provisioning", "decommissioning"):
        set_state(admin, state, "m1")
        r = admin.put("/proxy/kubelet/w1/debug/flags/v", content=b"4", params={"ttl": "0"})
        assert r.status_code == 200, (state, r.text)
        assert apiservers["m1"].requests == [], state  # m2 relays: m1 is not in the cluster
    assert len(apiservers["m2"].requests) == 5
    assert kubelet.level == 4
    set_state(admin, "failed", "m2")
    r = admin.put("/proxy/kubelet/w1/debug/flags/v", content=b"3")
    assert r.status_code == 409, r.text
    assert "there is no master in the cluster" in r.json()["message"]
    set_state(admin, "maintenance", "m1")
    assert admin.put("/proxy/kubelet/w1/debug/flags/v", content=b"3").status_code == 200
    assert len(apiservers["m1"].requests) == 1


@pytest.mark.parametrize(
    "settings_overrides", [{"verbosity_components": {"kubelet": {"via_apiserver": True}}}]
)
def test_the_relay_is_the_first_master_the_oldest_commissioned(
    admin: TestClient, emulators: Callable[..., Emulator], settings_overrides: object
) -> None:
    """Not the first by name: the master that has been in the cluster longest (nodes'
    `first_master`, as jobs and the drift watch choose it), in maintenance too."""
    apiservers, kubelet = two_relays_and_a_kubelet(admin, emulators)
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    db: Database = runtime_of(admin.app).db
    with db.write() as session:
        for name, days in (("m1", 9), ("m2", 1)):
            session.execute(
                sa.update(Node)
                .where(Node.name == name)
                .values(commissioned_at=since + dt.timedelta(days=days))
            )
    set_state(admin, "maintenance", "m2")
    r = admin.put("/proxy/kubelet/w1/debug/flags/v", content=b"4", params={"ttl": "0"})
    assert r.status_code == 200, r.text
    assert len(apiservers["m2"].requests) == 1
    assert apiservers["m1"].requests == []
    assert kubelet.level == 4


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "verbosity_components": {"kubelet": {"via_apiserver": True}},
            "verbosity_apiserver_node": "m1",
        }
    ],
)
def test_a_configured_relay_out_of_the_cluster_is_not_used(
    admin: TestClient, emulators: Callable[..., Emulator], settings_overrides: object
) -> None:
    emulator = emulators()
    apiserver = emulator.add("m1", token=TOKEN, relay=True)
    emulator.add("w1")
    emulator.start()
    register(admin, "m1", {"kube-apiserver": apiserver.port}, group="master", state="failed")
    register(admin, "w1")
    r = admin.put("/proxy/kubelet/w1/debug/flags/v", content=b"4")
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "Conflict"
    assert "through the apiserver on 'm1', a master that is failed" in r.json()["message"]
    assert apiserver.requests == []


def test_a_revert_still_goes_to_a_failed_node(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = fleet(admin, emulators, w1="commissioned")
    assert admin.put(
        "/proxy/kubelet/w1/debug/flags/v", content=b"5", params={"ttl": "1s"}
    ).is_success
    set_state(admin, "failed", "w1")
    wait_until(
        lambda: emulator.by_name["w1"].level == 2, timeout_s=10, what="w1's kubelet back at level 2"
    )
    wait_until(
        lambda: known(admin)["w1"]["reverts_at"] is None,
        timeout_s=10,
        what="w1's revert recorded as done",
    )
    assert events(admin, reason="VerbosityReverted")[0]["result"] == "succeeded"


@pytest.mark.parametrize("state", list(UNREACHABLE))
def test_a_revert_to_a_node_that_can_no_longer_run_it_is_forgotten(
    admin: TestClient, emulators: Callable[..., Emulator], state: str
) -> None:
    emulator = fleet(admin, emulators, w1="commissioned", w2="commissioned")
    body = {"component": "kubelet", "nodes": ["w1", "w2"], "level": 5, "ttl": "1s"}
    assert admin.post("/verbosity", json=body).status_code == 200
    set_state(admin, state, "w1")
    wait_until(
        lambda: emulator.by_name["w2"].level == 2, timeout_s=10, what="w2's kubelet back at level 2"
    )
    wait_until(
        lambda: set(known(admin)) == {"w2"}, timeout_s=10, what="only w2's level still known"
    )
    assert emulator.by_name["w1"].puts == 1  # the change only; no revert went there
    forgotten = [e for e in events(admin, reason="VerbosityReverted") if e["node"] == "w1"]
    assert len(forgotten) == 1
    assert forgotten[0]["details"]["forgotten"] is True
    assert f"node 'w1' is {UNREACHABLE[state]}" in forgotten[0]["note"]
    assert "clusterm forgets its level there" in forgotten[0]["note"]


def test_a_node_moved_out_of_the_components_groups_gets_no_reset(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = fleet(admin, emulators, m1="commissioned")
    r = admin.put("/proxy/kube-scheduler/m1/debug/flags/v", content=b"5", params={"ttl": "1h"})
    assert r.status_code == 200
    # Regrouped while out of the cluster (the only time the inventory allows it).
    set_state(admin, "failed", "m1")
    assert admin.patch("/nodes/m1", json={"host_group": "worker"}).status_code == 200
    r = admin.delete("/verbosity/kube-scheduler/m1")
    assert r.status_code == 502, r.text
    assert "runs on master nodes only" in r.json()["results"][0]["message"]
    assert emulator.by_name["m1-scheduler"].puts == 1
    assert known(admin) == {}
    # Nothing known any more: a reset naming it is now refused outright.
    r = admin.delete("/verbosity/kube-scheduler/m1")
    assert r.status_code == 409
    assert emulator.by_name["m1-scheduler"].puts == 1
