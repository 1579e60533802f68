"""Job tests run real Ansible through ansible-runner. Here with small local-connection playbooks
(tests/jobs/playbooks); over SSH to real sshd hosts in test_e2e_ssh.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.ansible import leftovers
from app.config import Settings, load_settings
from tests.polling import wait_until

if TYPE_CHECKING:
    from tests.jobs.daemon import Daemon
    from tests.jobs.sandbox import Sandbox

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
        # One replica, on a loaded test machine: a lease long enough that a renewal starved of
        # CPU for a few seconds never ends a job (failover has tests of its own, tests/cluster).
        "lease_ttl_s": 15.0,
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

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in FINISHED else None

    return wait_until(finished, timeout_s=timeout_s, what=f"job {job_id} to finish")


def wait_lines(client: TestClient, text: str, timeout_s: float = 30) -> dict[str, Any]:
    """Poll the active job until its log holds `text`."""

    def printed() -> dict[str, Any] | None:
        response = client.get("/info/job/active")
        if response.status_code != 200:
            return None
        job: dict[str, Any] = response.json()
        return job if any(text in line for line in job["logs"]) else None

    return wait_until(printed, timeout_s=timeout_s, what=f"the active job to print {text!r}")


def job_processes(job_dir: Path) -> list[int]:
    """The job's processes still running, as its runs recorded them, with their descendants."""
    return sorted({pid for run_dir in job_dir.glob("*/") for pid in leftovers.running(run_dir)})


def runner_pids(job_dir: Path) -> set[int]:
    """The processes running ansible-runner for a job: each run's record names it first."""
    return {
        record[0][0]
        for run_dir in job_dir.glob("*/")
        if (record := leftovers.recorded(run_dir)) and record[0][0] in leftovers.running(run_dir)
    }


def wait_no_processes(job_dir: Path, timeout_s: float) -> None:
    """Poll until no process of the job is left."""
    wait_until(
        lambda: not job_processes(job_dir),
        timeout_s=timeout_s,
        what=f"the processes of {job_dir} to end",
        interval_s=0.1,
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A real `clusterm serve` on the test's own data dir, stopped at the end of the test."""
    from tests.jobs.daemon import Daemon  # here: that module imports this one

    d = Daemon(tmp_path / "data", tmp_path / "stderr.log")
    try:
        yield d
    finally:
        d.close()


@pytest.fixture(scope="session")
def commissioned_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A real daemon whose sandbox nodes are commissioned, once per session (per xdist worker) for
    the jobs tests of several modules that leave the cluster as it was (tests/jobs/sandbox.py)."""
    from tests.jobs.sandbox import commissioned  # here: that module imports this one

    yield from commissioned(tmp_path_factory.mktemp("commissioned-sandbox"))
