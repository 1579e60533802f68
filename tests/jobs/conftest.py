"""Job tests run real Ansible through ansible-runner. Here with small local-connection playbooks
(tests/jobs/playbooks); over SSH to real sshd hosts in test_e2e_ssh.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.ansible.process import job_processes
from app.config import Settings, load_settings

PLAYBOOKS = Path(__file__).parent / "playbooks"
FINISHED = {"successful", "failed", "canceled", "timeout", "interrupted"}
LOCAL_VARS = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def job_settings(data_dir: Path, db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": db_url,
        "playbook_dir": PLAYBOOKS,
        "commission_playbook": "job.yml",
        "decommission_playbook": "job.yml",
        "update_playbook": "job.yml",
        "discover_playbook": "job.yml",
        "cleanup_playbook": "cleanup.yml",
        # The test playbook's wait, for operators too (the setting's own use).
        "operator_extra_vars": {"sleep_s": {"type": "int", "min": 0, "max": 600}},
    }
    values.update(extra)
    return load_settings(**values)


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    return job_settings(data_dir, db_url)


def local_node(name: str, group: str = "worker", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "127.0.0.1",
        "host_group": group,
        "vars": dict(LOCAL_VARS),
        **extra,
    }


def register(client: TestClient, *nodes: dict[str, Any]) -> None:
    response = client.post("/nodes", json=list(nodes))
    assert response.status_code == 201, response.text


def states(client: TestClient) -> dict[str, str]:
    return {n["name"]: n["state"] for n in client.get("/info/nodes").json()}


def wait_finished(client: httpx.Client, job_id: int, timeout_s: float = 60) -> dict[str, Any]:
    """Poll the job until it has ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def wait_lines(client: TestClient, text: str, timeout_s: float = 30) -> dict[str, Any]:
    """Poll the active job until its log holds `text`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get("/info/job/active")
        if response.status_code == 200 and any(text in line for line in response.json()["logs"]):
            return response.json()
        time.sleep(0.05)
    raise AssertionError(f"the active job never printed {text!r}")


def runner_pids(job_dir: Path) -> set[int]:
    """The processes running ansible-runner for a job: the parents of its ansible-playbook."""
    playbook = job_processes(job_dir)
    return {parent_of(pid) for pid in playbook} - set(playbook)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_no_processes(job_dir: Path, timeout_s: float) -> None:
    """Poll until no process of the job is left."""
    deadline = time.monotonic() + timeout_s
    while left := job_processes(job_dir):
        assert time.monotonic() < deadline, f"the job's processes run on: {left}"
        time.sleep(0.1)
