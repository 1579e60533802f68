"""A real daemon whose job prints 50 MB: its memory stays bounded, and the log keeps the head, one
marker and the tail, with line numbers that stay absolute. Memory is a count, not a time: the
bounds here hold however loaded the machine is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs.conftest import FINISHED, local_node
from tests.jobs.daemon import Daemon
from tests.polling import wait_until

CAP = 1024 * 1024
# What the daemon may grow by while a job prints 50 MB into a 1 MiB log: one chunk of output in
# flight and the reads of the log. Keeping the output would take well over 100 MB (50 MB of
# text as Python strings); ansible-runner in the daemon's own process, before its pexpect buffer
# was bounded, took 217 MB.
GROWTH_MB = 40


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clusterm.db'}"  # a daemon process: SQLite, as in production


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "data", tmp_path / "stderr.log", CLUSTERM_JOB_LOG_CAP_BYTES=str(CAP))
    try:
        yield d
    finally:
        d.close()


def run_job(
    client: httpx.Client, extra_vars: dict[str, Any], kind: str = "commission"
) -> dict[str, Any]:
    response = client.post(f"/{kind}/nodes", json={"nodes": ["m1"], "extra_vars": extra_vars})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in FINISHED else None

    # Polled every 0.2 s, not faster: the daemon is busy enough with the job's output.
    return wait_until(finished, timeout_s=300, what=f"job {job_id} to finish", interval_s=0.2)


def test_a_job_printing_50_mb(daemon: Daemon) -> None:
    client = daemon.start()
    client.post("/nodes", json=[local_node("m1", "master")]).raise_for_status()
    run_job(client, {})  # warm up: everything a job needs is loaded before the baseline
    run_job(client, {}, "decommission")
    before = daemon.memory_kb("VmHWM")

    job = run_job(client, {"emit_bytes": 50_000_000, "emit_line": "z" * 990})
    assert job["status"] == "successful", job
    grown_mb = (daemon.memory_kb("VmHWM") - before) / 1024
    assert grown_mb < GROWTH_MB, f"the daemon grew by {grown_mb:.0f} MB for a 50 MB job"

    last = client.get("/info/job/last", timeout=60).json()
    lines = last["logs"]
    assert last["dropped_bytes"] > 48_000_000
    assert sum(len(line.encode()) + 1 for line in lines) < CAP + 1024
    marker = last["gap"]["after_line"]
    assert lines[marker].startswith("[clusterm:")
    assert f"{last['gap']['lines']} lines" in lines[marker]
    head, tail = lines[:marker], lines[marker + 1 :]
    assert "EMIT BEGIN" in head
    assert head[head.index("EMIT BEGIN") + 1].startswith("odd bytes: caf\ufffd")
    assert "EMIT END" in tail
    # The last numbered line before EMIT END: 50 MB / 1,000 bytes a line, the first one 0.
    assert tail[tail.index("EMIT END") - 2].startswith("00000999 ")
    assert any(line.startswith("PLAY RECAP") for line in tail)
    assert tail[-1].startswith(f"[clusterm: job {job['id']} successful")
    assert last["next_line"] == marker + 1 + last["gap"]["lines"] + len(tail)
    since = client.get("/info/job/last", params={"since": last["next_line"] - 3}).json()
    assert since["logs"] == lines[-2:]


def test_a_task_whose_result_is_10_mb(daemon: Daemon) -> None:
    """One event holding 10 MB: ansible-runner reads it whole (160 MB when it ran in the daemon
    itself), now in its own process."""
    client = daemon.start()
    client.post("/nodes", json=[local_node("m1", "master")]).raise_for_status()
    run_job(client, {})
    run_job(client, {}, "decommission")
    before = daemon.memory_kb("VmHWM")

    job = run_job(client, {"result_bytes": 10_000_000})
    assert job["status"] == "failed", job  # the task fails so that Ansible shows its output
    assert "m1 (failed)" in job["error"]
    grown_mb = (daemon.memory_kb("VmHWM") - before) / 1024
    assert grown_mb < GROWTH_MB, f"the daemon grew by {grown_mb:.0f} MB for a 10 MB result"
    # Ansible shows the result as one line of JSON (stdout, then stdout_lines): the log keeps
    # its start, cut at a sixteenth of the cap, and says so.
    logs = client.get("/info/job/last").json()["logs"]
    shown = [line for line in logs if "fatal: [m1]: FAILED!" in line]
    assert len(shown) == 1, [line[:200] for line in logs]
    assert "r" * 99 in shown[0]
    assert shown[0].endswith(f"[clusterm: line cut at {CAP // 16} chars]")
