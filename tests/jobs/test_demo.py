"""`clusterm serve --demo`: demo nodes registered on this machine and their commission started.
(The whole demo commission runs the shipped playbooks for a minute or more; the playbooks
themselves are tested over SSH in tests/playbooks and test_e2e_ssh.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_settings
from app.demo import DEMO_NODES
from tests.conftest import admin_client
from tests.jobs.conftest import wait_finished

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


def test_demo_registers_sandbox_nodes_and_starts_a_commission(data_dir: Path, db_url: str) -> None:
    settings = load_settings(data_dir=data_dir, database_url=db_url)
    with admin_client(settings, demo=True) as client:
        nodes = {n["name"]: n for n in client.get("/info/nodes").json()}
        assert set(nodes) == {name for name, _ in DEMO_NODES}
        for node in nodes.values():
            assert node["vars"]["ansible_connection"] == "local"
            root = Path(node["vars"]["clusterm_node_root"])
            assert root.is_relative_to(data_dir), "the demo writes only under its data dir"
            assert node["vars"]["clusterm_env"]["PATH"].startswith(str(settings.playbook_dir))
        active = client.get("/info/job/active").json()
        assert active["actor"] == "demo"
        assert active["kind"] == "commission"
        assert set(active["nodes"]) == set(nodes)
        first = client.post("/info/job/active/cancel").json()
        if first["status"] == "running":
            # The cleanup of the cancelled nodes runs: a second cancel stops it.
            client.post("/info/job/active/cancel")
        assert wait_finished(client, active["id"])["status"] == "canceled"

    # A second start with the nodes failed (canceled) starts their commission again.
    with admin_client(settings, demo=True) as client:
        assert client.get("/info/job/active").json()["id"] == 2
        client.post("/info/job/active/cancel")


def test_the_demo_commission_ends_with_every_demo_node_commissioned(
    data_dir: Path, db_url: str
) -> None:
    """What a newcomer's first command shows: the shipped playbooks, run for real in the sandbox,
    commission the three demo nodes (a failure here is what `clusterm serve --demo` shows too)."""
    settings = load_settings(data_dir=data_dir, database_url=db_url)
    with admin_client(settings, demo=True) as client:
        job = wait_finished(client, client.get("/info/job/active").json()["id"], timeout_s=300)
        assert job["status"] == "successful", client.get("/info/job/last?format=text").text[-3000:]
        states = {n["name"]: n["state"] for n in client.get("/info/nodes").json()}
        assert states == {name: "commissioned" for name, _ in DEMO_NODES}
