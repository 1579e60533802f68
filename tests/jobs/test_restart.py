"""A real daemon killed in the middle of a job: the next start ends the job as interrupted, kills
what it left running, settles its nodes, and still serves its log as the last job."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs.conftest import (
    job_processes,
    local_node,
    runner_pids,
    wait_finished,
    wait_no_processes,
)
from tests.jobs.daemon import Daemon
from tests.polling import wait_until


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # A real daemon process each time: SQLite only to keep CI fast (the store itself is covered
    # on both backends by the API tests).
    return f"sqlite:///{tmp_path / 'clusterm.db'}"


def start_sleeping_job(daemon: Daemon) -> tuple[httpx.Client, dict[str, Any]]:
    client = daemon.start()
    client.post("/nodes", json=[local_node("m1", "master")]).raise_for_status()
    job = client.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 60}}
    ).json()
    return client, dict(job)


def wait_for_line(client: httpx.Client, text: str) -> dict[str, Any]:
    def printed() -> dict[str, Any] | None:
        response = client.get("/info/job/active", params={"color": "false"})
        if response.status_code != 200:
            return None
        job: dict[str, Any] = response.json()
        return job if any(text in line for line in job["logs"]) else None

    return wait_until(printed, timeout_s=30, what=f"the active job to print {text!r}")


def test_kill_9_mid_job_then_restart(daemon: Daemon) -> None:
    client, job = start_sleeping_job(daemon)
    seen = wait_for_line(client, "TASK [Wait]")
    job_dir = daemon.data_dir / "jobs" / str(job["id"])

    # The daemon dies together with its runner process (as under `kill -9 -- -PGID`, or the
    # kernel's out-of-memory killer): nobody is left to stop Ansible, in its own session.
    for pid in runner_pids(job_dir):
        os.kill(pid, signal.SIGKILL)
    daemon.stop(signal.SIGKILL)
    assert job_processes(job_dir), "ansible-playbook should have outlived the daemon"

    client = daemon.start()
    assert job_processes(job_dir) == [], "the restart kills what the dead daemon left"
    assert client.get("/info/job/active").status_code == 404
    last = client.get("/info/job/last", params={"color": "false"}).json()
    assert last["id"] == job["id"]
    assert last["status"] == "interrupted"
    assert "clusterm stopped while this job was running" in last["error"]
    assert last["complete"] is True
    # Every line printed before the kill, in place and numbered as before, then the explanation.
    assert last["logs"][: len(seen["logs"])] == seen["logs"]
    assert any("interrupted" in line for line in last["logs"][len(seen["logs"]) :])
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "interrupted"
    assert client.get("/info/node/m1").json()["state"] == "failed"
    # And the daemon takes new jobs.
    again = client.post("/commission/nodes", json={"nodes": ["m1"]})
    assert again.status_code == 202
    wait_finished(client, again.json()["id"], timeout_s=60)


def test_kill_9_of_the_daemon_alone_stops_its_playbook(daemon: Daemon) -> None:
    """The runner process reads the end of its pipe to the dead daemon and stops the job."""
    client, job = start_sleeping_job(daemon)
    wait_for_line(client, "TASK [Wait]")
    job_dir = daemon.data_dir / "jobs" / str(job["id"])
    assert job_processes(job_dir)
    daemon.stop(signal.SIGKILL)
    wait_no_processes(job_dir, timeout_s=10)


def test_sigterm_mid_job_ends_it_as_interrupted(daemon: Daemon) -> None:
    client, job = start_sleeping_job(daemon)
    wait_for_line(client, "TASK [Wait]")
    daemon.stop(signal.SIGTERM)
    assert job_processes(daemon.data_dir / "jobs" / str(job["id"])) == []

    client = daemon.start()
    last = client.get("/info/job/last").json()
    assert last["status"] == "interrupted"
    assert "clusterm was stopped" in last["error"]
    assert last["logs"][-1].startswith(f"[clusterm: job {job['id']} interrupted")
    assert client.get("/info/node/m1").json()["state"] == "failed"
