"""A real daemon killed in the middle of a job: the next start ends the job as interrupted, kills
what it left running, settles its nodes, and still serves its log as the last job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.jobs.worker import job_processes
from tests.core.test_daemon import free_port, wait_ready
from tests.jobs.conftest import FINISHED, PLAYBOOKS, local_node

CLUSTERM = [sys.executable, "-c", "from app.cli import main; main()"]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # A real daemon process each time: SQLite only to keep CI fast (the store itself is covered
    # on both backends by the API tests).
    return f"sqlite:///{tmp_path / 'clusterm.db'}"


class Daemon:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log = data_dir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.clients: list[httpx.Client] = []

    def start(self) -> httpx.Client:
        env = {
            **os.environ,
            "CLUSTERM_PLAYBOOK_DIR": str(PLAYBOOKS),
            "CLUSTERM_COMMISSION_PLAYBOOK": "job.yml",
        }
        env.pop("CLUSTERM_DATABASE_URL", None)
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*CLUSTERM, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                stderr=err,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        wait_ready(self.url, self.proc)
        token = (self.data_dir / "admin.token").read_text().strip()
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        self.clients.append(client)
        return client

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        for client in self.clients:
            client.close()  # an idle keep-alive connection would hold up a graceful shutdown
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "data", tmp_path / "stderr.log")
    try:
        yield d
    finally:
        for client in d.clients:
            client.close()
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def wait_for_line(client: httpx.Client, text: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.get("/info/job/active", params={"color": "false"})
        if response.status_code == 200 and any(text in line for line in response.json()["logs"]):
            return dict(response.json())
        time.sleep(0.05)
    raise AssertionError(f"no line with {text!r}")


def test_kill_9_mid_job_then_restart(daemon: Daemon) -> None:
    client = daemon.start()
    client.post("/nodes", json=[local_node("m1", "master")]).raise_for_status()
    job = client.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 60}}
    ).json()
    seen = wait_for_line(client, "TASK [Wait]")
    job_dir = daemon.data_dir / "jobs" / str(job["id"])

    daemon.stop(signal.SIGKILL)
    # The daemon is gone; Ansible is not (it runs in its own session).
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
    deadline = time.monotonic() + 60
    while client.get(f"/jobs/{again.json()['id']}").json()["status"] not in FINISHED:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_sigterm_mid_job_ends_it_as_interrupted(daemon: Daemon) -> None:
    client = daemon.start()
    client.post("/nodes", json=[local_node("m1", "master")]).raise_for_status()
    job = client.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 60}}
    ).json()
    wait_for_line(client, "TASK [Wait]")
    daemon.stop(signal.SIGTERM)
    assert job_processes(daemon.data_dir / "jobs" / str(job["id"])) == []

    client = daemon.start()
    last = client.get("/info/job/last").json()
    assert last["status"] == "interrupted"
    assert "clusterm was stopped" in last["error"]
    assert last["logs"][-1].startswith(f"[clusterm: job {job['id']} interrupted")
    assert client.get("/info/node/m1").json()["state"] == "failed"
