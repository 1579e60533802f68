"""A real `clusterm serve` running the shipped playbooks on the demo's sandbox nodes.

The nodes are the demo's (app.demo): 127.0.0.1 over the local connection, every command that
would change this machine simulated (ansible/demo/bin), every file under the test's directory.
Unlike `serve --demo`, nothing starts by itself: the tests send the jobs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from app.config import load_settings
from app.demo import DEMO_NODES, demo_node
from tests.jobs.conftest import wait_finished
from tests.jobs.daemon import Daemon

PLAYBOOK_DIR = Path(__file__).resolve().parents[2] / "ansible"
NAMES = [name for name, _ in DEMO_NODES]
JOB_TIMEOUT_S = 600  # the whole commission of three nodes takes a minute or two on a busy machine


class Sandbox:
    def __init__(self, base: Path) -> None:
        self.data_dir = base / "data"
        self.daemon = Daemon(
            self.data_dir,
            base / "stderr.log",
            CLUSTERM_PLAYBOOK_DIR=str(PLAYBOOK_DIR),
            CLUSTERM_COMMISSION_PLAYBOOK="commission.yml",
            CLUSTERM_DECOMMISSION_PLAYBOOK="decommission.yml",
            CLUSTERM_UPDATE_PLAYBOOK="update.yml",
            CLUSTERM_CLEANUP_PLAYBOOK="cleanup.yml",
        )
        try:
            self.client = self._start()
        except BaseException:
            self.daemon.close()
            raise

    def _start(self) -> httpx.Client:
        # The forkserver imports ansible-runner as the daemon starts: slow on a loaded machine.
        client = self.daemon.start(ready_timeout_s=120)
        self.token = (self.data_dir / "admin.token").read_text().strip()
        settings = load_settings(data_dir=self.data_dir, playbook_dir=PLAYBOOK_DIR)
        nodes = [
            demo_node(settings, name, group).model_dump(mode="json") for name, group in DEMO_NODES
        ]
        response = client.post("/nodes", json=nodes)
        assert response.status_code == 201, response.text
        for node in nodes:
            # The simulated host lays out its root (a fresh Debian host's /etc/fstab, ...) the
            # first time it is asked anything: before any job, as a real machine would be there.
            env = {**os.environ, **node["vars"]["clusterm_env"]}
            hostname = PLAYBOOK_DIR / "demo" / "bin" / "hostname"
            subprocess.run([str(hostname), "-f"], env=env, check=True, capture_output=True)
        return client

    @property
    def demo_dir(self) -> Path:
        """Every node's root and the simulated cluster's state."""
        return self.data_dir / "demo"

    def snapshot(self) -> dict[str, str]:
        """Every file under the sandbox (the nodes' roots, the simulated cluster) and its hash."""
        return {
            str(path.relative_to(self.demo_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.demo_dir.rglob("*"))
            if path.is_file()
        }

    def run(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a job, wait for its end, return it (GET /jobs/{id})."""
        response = self.client.post(path, json=body)
        assert response.status_code == 202, response.text
        return wait_finished(self.client, response.json()["id"], timeout_s=JOB_TIMEOUT_S)

    def log(self, job_id: int) -> str:
        return self.client.get(f"/jobs/{job_id}/log", params={"format": "text"}).text

    def states(self) -> dict[str, str]:
        return {n["name"]: n["state"] for n in self.client.get("/info/nodes").json()}

    def events(self, job_id: int) -> list[dict[str, Any]]:
        """The job's timeline events, oldest first (audit ones too)."""
        response = self.client.get("/info/timeline", params={"job": job_id, "limit": 1000})
        assert response.status_code == 200, response.text
        return list(reversed(response.json()["items"]))

    def close(self) -> None:
        self.daemon.close()

    def assert_successful(self, job: dict[str, Any]) -> None:
        assert job["status"] == "successful", f"{job}\n{self.log(job['id'])[-4000:]}"


def commissioned(base: Path) -> Iterator[Sandbox]:
    """The sandbox's nodes, commissioned. Shared by the tests that leave the cluster as they found
    it (check jobs, an update with nothing to do): a commission is most of such a test's time."""
    box = Sandbox(base)
    try:
        box.assert_successful(box.run("/commission/nodes", {"nodes": NAMES}))
        assert box.states() == dict.fromkeys(NAMES, "commissioned")
        yield box
    finally:
        box.close()
