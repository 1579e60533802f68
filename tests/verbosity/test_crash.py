"""A change is written, revert included, before it is sent: a daemon killed while a component holds
the PUT leaves a revert behind, which the next start runs. And what each outcome leaves."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db import Database
from app.nodes.models import Node
from app.timeline import service as timeline
from tests.jobs.daemon import Daemon
from tests.polling import wait_until
from tests.verbosity.conftest import TOKEN, Pki, component_settings, register
from tests.verbosity.emulator import Emulator, Endpoint

KUBELET = "/proxy/kubelet/n1/debug/flags/v"


def known(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {k["node"]: k for k in client.get("/verbosity").json()}


def events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    query = {"action": "verbosity", "limit": 100, **params}
    items: list[dict[str, Any]] = client.get("/info/timeline", params=query).json()["items"]
    return items


@pytest.fixture
def daemon(tmp_path: Path, db_url: str, pki: Pki) -> Iterator[Daemon]:
    config = tmp_path / "clusterm.yaml"
    components = {
        name: {key: str(value) for key, value in values.items()}
        for name, values in component_settings(pki).items()
    }
    # JSON is YAML; the database URL goes in the file because the helper drops it from the
    # environment.
    config.write_text(
        json.dumps(
            {
                "database_url": db_url,
                "verbosity_components": components,
                "verbosity_timeout_s": 60,
                "verbosity_revert_retry_s": 0.5,
            }
        )
    )
    made = Daemon(tmp_path / "data", tmp_path / "daemon.log", CLUSTERM_CONFIG=str(config))
    yield made
    made.close()


def commissioned_node(client: httpx.Client, db_url: str, endpoint: Endpoint) -> None:
    variables = {"clusterm_verbosity": {"kubelet": {"port": endpoint.port}}}
    r = client.post("/nodes", json={"name": "n1", "address": "127.0.0.1", "vars": variables})
    assert r.status_code == 201, r.text
    db = timeline.attach(Database(db_url))
    try:
        with db.write() as session:
            session.execute(sa.update(Node).values(state="commissioned"))
    finally:
        db.dispose()


def held_put(client: httpx.Client, pool: ThreadPoolExecutor, ttl: str) -> Future[Any]:
    def put() -> Any:
        try:
            return client.put(KUBELET, content=b"6", params={"ttl": ttl}, timeout=120)
        except httpx.TransportError as exc:
            return exc  # the daemon died under it, as intended

    return pool.submit(put)


def kill_while_held(
    daemon: Daemon, client: httpx.Client, endpoint: Endpoint, ttl: str
) -> dict[str, Any]:
    """Send a change the component holds, check what is written meanwhile, then kill -9."""
    puts = endpoint.puts
    endpoint.delay_s = 60.0
    with ThreadPoolExecutor(1) as pool:
        answer = held_put(client, pool, ttl)
        wait_until(
            lambda: endpoint.puts == puts + 1, timeout_s=10, what="one more PUT to the component"
        )
        assert endpoint.level == 6  # the component took it; its answer is held
        row = known(client)["n1"]
        daemon.stop(signal.SIGKILL)
        assert isinstance(answer.result(timeout=30), httpx.TransportError)
    endpoint.delay_s = 0.0
    return row


def daemon_with_kubelet(
    daemon: Daemon, db_url: str, emulators: Callable[..., Emulator]
) -> tuple[httpx.Client, Endpoint]:
    """The daemon started, with one commissioned node whose kubelet is an emulator."""
    emulator = emulators()
    endpoint = emulator.add("n1", token=TOKEN)
    emulator.start()
    client = daemon.start()
    commissioned_node(client, db_url, endpoint)
    return client, endpoint


def test_a_change_killed_in_flight_is_reverted_after_the_restart(
    daemon: Daemon, db_url: str, emulators: Callable[..., Emulator]
) -> None:
    client, endpoint = daemon_with_kubelet(daemon, db_url, emulators)

    row = kill_while_held(daemon, client, endpoint, ttl="2s")
    # Written before the PUT went out: the new level, its revert, and the mark of a change whose
    # outcome is not known yet.
    assert (row["level"], row["revert_to"], row["set_by"]) == (6, 2, "admin")
    assert row["reverts_at"] is not None
    assert row["last_error"].startswith("in flight: V6 sent by admin")

    client = daemon.start()
    wait_until(lambda: endpoint.level == 2, timeout_s=40, what="the component back at level 2")
    wait_until(
        lambda: known(client)["n1"]["reverts_at"] is None,
        timeout_s=10,
        what="n1's revert recorded as done",
    )
    row = known(client)["n1"]
    assert (row["level"], row["previous_level"], row["last_error"]) == (2, 6, None)
    reverted = events(client, reason="VerbosityReverted")
    assert len(reverted) == 1
    assert reverted[0]["result"] == "succeeded"
    assert reverted[0]["details"]["after_interrupted_change"] is True
    assert reverted[0]["details"]["requested_by"] == "admin"
    assert (reverted[0]["from_state"], reverted[0]["to_state"]) == ("6", "2")
    # No outcome was ever known, so none was recorded as if it were.
    assert events(client, reason="VerbositySet") == []


def test_a_permanent_change_killed_in_flight_keeps_the_pending_revert(
    daemon: Daemon, db_url: str, emulators: Callable[..., Emulator]
) -> None:
    client, endpoint = daemon_with_kubelet(daemon, db_url, emulators)
    r = client.put(KUBELET, content=b"4", params={"ttl": "4s"})
    assert r.status_code == 200, r.text
    pending = known(client)["n1"]["reverts_at"]

    row = kill_while_held(daemon, client, endpoint, ttl="0")
    # Until the permanent change is known to have taken, the revert it would cancel stays.
    assert (row["level"], row["revert_to"], row["reverts_at"]) == (6, 2, pending)

    client = daemon.start()
    wait_until(lambda: endpoint.level == 2, timeout_s=40, what="the component back at level 2")
    wait_until(
        lambda: known(client)["n1"]["reverts_at"] is None,
        timeout_s=10,
        what="n1's revert recorded as done",
    )


# --- what each outcome leaves, in process -------------------------------------------------------


@pytest.fixture
def kubelet(admin: TestClient, emulators: Callable[..., Emulator]) -> Endpoint:
    emulator = emulators()
    endpoint = emulator.add("n1", token=TOKEN)
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    return endpoint


def test_a_refused_change_leaves_the_row_as_it_was(admin: TestClient, kubelet: Endpoint) -> None:
    assert admin.put(KUBELET, content=b"3", params={"ttl": "0"}).status_code == 200
    assert admin.put(KUBELET, content=b"4", params={"ttl": "1h"}).status_code == 200
    before = known(admin)["n1"]
    kubelet.mode = "forbidden"
    r = admin.put(KUBELET, content=b"6", params={"ttl": "5m"})
    assert r.status_code == 403
    assert known(admin)["n1"] == before
    assert (before["level"], before["revert_to"]) == (4, 3)
    failed = events(admin, reason="VerbositySet", result="failed")
    assert len(failed) == 1
    assert "uncertain" not in failed[0]["details"]


@pytest.mark.parametrize("settings_overrides", [{"verbosity_timeout_s": 1.0}])
def test_a_change_with_no_answer_is_reverted_at_once(
    admin: TestClient, kubelet: Endpoint, settings_overrides: object
) -> None:
    kubelet.delay_s = 3.0
    r = admin.put(KUBELET, content=b"6", params={"ttl": "1h"})
    assert r.status_code == 504
    kubelet.delay_s = 0.0
    # The component may have taken it (this one did): the revert puts back the level before.
    assert kubelet.level == 6
    wait_until(lambda: kubelet.level == 2, timeout_s=10, what="the kubelet back at level 2")
    wait_until(
        lambda: known(admin)["n1"]["reverts_at"] is None,
        timeout_s=10,
        what="n1's revert recorded as done",
    )
    row = known(admin)["n1"]
    assert (row["level"], row["last_error"]) == (2, None)
    set_event = events(admin, reason="VerbositySet")[0]
    assert set_event["result"] == "failed"
    assert set_event["details"]["uncertain"] is True
    assert set_event["details"]["reverts_to"] == 2
    reverted = events(admin, reason="VerbosityReverted")
    assert reverted[0]["result"] == "succeeded"
    assert (reverted[0]["from_state"], reverted[0]["to_state"]) == ("6", "2")
