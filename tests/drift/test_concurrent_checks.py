"""One drift check at a time, and nobody waits for it: a second `POST /drift/check` is a 409 at
once, and the periodic loop skips its turn instead of queueing behind a running check. With a real
Ansible run (tests/drift/playbooks/gated_nodes.yml) held open until the test lets it finish."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.nodes.models import Node
from app.runtime import runtime_of
from tests.conftest import node_body
from tests.polling import wait_until

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

PLAYBOOK = Path(__file__).parent / "playbooks" / "gated_nodes.yml"


class Gate:
    def __init__(self, tmp_path: Path) -> None:
        self.file = tmp_path / "gate"
        self.runs_file = tmp_path / "runs"

    def runs(self) -> int:
        return len(self.runs_file.read_text().splitlines()) if self.runs_file.exists() else 0

    def open(self) -> None:
        self.file.touch()


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return Gate(tmp_path)


def drift_client(settings: Settings, gate: Gate, interval_s: float) -> TestClient:
    gated = settings.model_copy(
        update={
            "cluster_nodes_playbook": str(PLAYBOOK),
            "extra_vars": {"gate_file": str(gate.file), "runs_file": str(gate.runs_file)},
            "drift_interval_s": interval_s,
            "drift_timeout_s": 60,
        }
    )
    return TestClient(create_app(gated), raise_server_exceptions=False)


def commissioned_master(client: TestClient, settings: Settings) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {settings.admin_token_file.read_text().strip()}"}
    r = client.post("/nodes", json=node_body("m1", host_group="master"), headers=admin)
    assert r.status_code == 201, r.text
    db: Database = runtime_of(client.app).db
    with db.write() as session:
        session.execute(sa.update(Node).where(Node.name == "m1").values(state="commissioned"))
    return admin


@pytest.fixture
def on_demand(settings: Settings, gate: Gate) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with drift_client(settings, gate, interval_s=0) as client:
        yield client, commissioned_master(client, settings)
        gate.open()  # whatever happened, no check is left waiting


def test_a_second_check_is_409_at_once_while_one_runs(
    on_demand: tuple[TestClient, dict[str, str]], gate: Gate
) -> None:
    client, admin = on_demand
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(client.post, "/drift/check", headers=admin)
        wait_until(
            lambda: gate.runs() == 1, timeout_s=60, what="the first check to start its playbook"
        )

        def second() -> tuple[httpx.Response, float]:
            started = time.monotonic()
            return client.post("/drift/check", headers=admin), time.monotonic() - started

        others = [f.result(timeout=10) for f in [pool.submit(second) for _ in range(5)]]
        for r, took in others:
            assert r.status_code == 409, r.text
            assert took < 2, "the refusal waited for the running check"
            body: dict[str, Any] = r.json()
            assert body["error"] == "CheckRunning"
            assert "already running" in body["message"]
            assert body["running_since"]
        assert not first.done()  # still held by the gate: the refusals did not wait for it

        gate.open()
        done = first.result(timeout=60)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "checked"
    assert done.json()["message"] == "1 Nodes in the cluster; none missing"
    assert gate.runs() == 1  # the refused checks never ran
    # And the next one runs as usual.
    again = client.post("/drift/check", headers=admin)
    assert again.status_code == 200, again.text
    assert gate.runs() == 2


def test_the_periodic_loop_skips_its_turn_rather_than_queue(settings: Settings, gate: Gate) -> None:
    with drift_client(settings, gate, interval_s=0.2) as client:
        admin = commissioned_master(client, settings)
        try:
            wait_until(
                lambda: gate.runs() == 1, timeout_s=60, what="the loop's first check to start"
            )
            r = client.post("/drift/check", headers=admin)
            assert r.status_code == 409, r.text
            time.sleep(1.5)  # several intervals, with the check still held
            assert gate.runs() == 1, "a check started while another was running"
            # The daemon answers meanwhile: no worker is stuck waiting for the check.
            answers = [threading.Thread(target=client.get, args=("/info/nodes",)) for _ in range(8)]
            for t in answers:
                t.start()
            for t in answers:
                t.join(5)
                assert not t.is_alive()
        finally:
            gate.open()
        # The loop carries on once the check ends: more runs, and a result to read.
        wait_until(lambda: gate.runs() >= 3, timeout_s=60, what="the loop to go on checking")
        last = client.get("/info/drift", headers=admin).json()
        assert last["outcome"] == "checked"
