"""The child process that runs ansible-runner: output in chunks, its death, pexpect's buffer."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pexpect  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from app.ansible import leftovers, runner
from app.ansible.process import BATCH_S, _child_main, _ChildPipe, split_lines
from app.ansible.spec import Priority, RunSpec
from tests.conftest import admin_client
from tests.jobs.conftest import (
    job_settings,
    local_node,
    register,
    runner_pids,
    wait_finished,
    wait_lines,
    wait_no_processes,
)
from tests.polling import wait_until

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


def lines_of(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


@given(st.text(alphabet="ab\n\r", max_size=60), st.integers(min_value=1, max_value=12))
def test_chunks_hold_whole_lines_and_lose_none(text: str, size: int) -> None:
    pieces = list(split_lines(text, size))
    cut = [p for p in pieces if "[clusterm: line cut" in p]
    if not cut:
        assert [line for p in pieces for line in lines_of(p)] == lines_of(text)
    for piece in pieces:
        marker = piece.find(" [clusterm: line cut")
        assert len(piece if marker < 0 else piece[:marker]) <= size


def test_a_line_longer_than_a_chunk_is_cut_and_says_so() -> None:
    pieces = list(split_lines("x" * 30 + "\nend", 10))
    assert pieces == ["x" * 10 + " [clusterm: line cut at 10 chars]", "end"]


def test_pexpect_keeps_only_its_search_window_between_timeouts() -> None:
    """runner reads with expect([TIMEOUT, EOF]) in a loop; unpatched, pexpect kept (and copied at
    every timeout) everything read since the start: the job's whole output, in memory."""
    runner.bound_pexpect_before()  # as runner.run_playbook does, in the process that runs it
    code = "import sys, time\nfor i in range(20):\n    print('y' * 100_000, flush=True)\n"
    code += "    time.sleep(0.01)\ntime.sleep(0.5)\n"
    child = pexpect.spawn(sys.executable, ["-c", code], encoding="utf-8", echo=False)
    read, biggest = 0, 0
    while child.isalive():
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.05, searchwindowsize=100)
        read = max(read, len(child.before or ""))
        biggest = max(biggest, child._before.tell())
    child.close()
    assert biggest <= 100, f"pexpect holds {biggest} characters between reads"
    assert read > 0, "nothing was read: the check above proves nothing"


def test_runner_process_killed_mid_job_fails_the_job_and_says_why(
    admin: TestClient, data_dir: Path
) -> None:
    register(admin, local_node("m1", "master"))
    job = admin.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 60}}
    ).json()
    wait_lines(admin, "TASK [Wait]")
    job_dir = data_dir / "jobs" / str(job["id"])
    runners = runner_pids(job_dir)
    assert len(runners) == 1, runners
    os.kill(runners.pop(), signal.SIGKILL)

    done = wait_finished(admin, job["id"])
    assert done["status"] == "failed"
    assert "the process running ansible-runner failed" in done["error"]
    assert "SIGKILL" in done["error"]
    assert "lack of memory" in done["error"]
    assert admin.get("/info/node/m1").json()["state"] == "failed"
    text = admin.get("/info/job/last", params={"format": "text"}).text
    assert "[clusterm: the process running ansible-runner failed" in text
    wait_no_processes(job_dir, timeout_s=5)


def test_output_is_batched_into_the_same_lines_and_comes_before_the_result() -> None:
    clock = [100.0]
    ours, theirs = multiprocessing.Pipe()
    pipe = _ChildPipe(theirs, clock=lambda: clock[0])
    for text in ("x\ny", "z\n", "\x1b[31mred\x1b[0m"):
        pipe.on_output(text)
    assert not ours.poll(), "a batch goes out every BATCH_S, not every event"
    pipe.send(("result", "done"))
    kind, text = ours.recv()
    assert kind == "out"
    assert lines_of(text) == ["x", "y", "z", "", "\x1b[31mred\x1b[0m"]  # as three events give
    assert ours.recv() == ("result", "done")
    clock[0] += 2 * BATCH_S
    pipe.on_output("late")
    assert ours.recv() == ("out", "late")


@pytest.mark.parametrize("priority", ["idle", "low", "normal"])
def test_a_jobs_processes_run_at_the_job_priority(
    priority: str, data_dir: Path, db_url: str
) -> None:
    """job_priority: the runner's process, ansible-playbook, its forks (each in a session of its
    own) and the task's command all run at it, so a job that keeps every core busy leaves the
    API its turn."""
    settings = job_settings(data_dir, db_url, job_priority=priority)
    with admin_client(settings) as client:
        register(client, local_node("m1", "master"))
        job = client.post(
            "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 60}}
        ).json()
        run_dir = data_dir / "jobs" / str(job["id"]) / "main"

        def commands() -> dict[int, bytes]:
            found: dict[int, bytes] = {}
            for pid in leftovers.running(run_dir):
                # Before the sleep runs, a short-lived process (a module's start) may end
                # between the record and this read: it is no longer the job's.
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
            return found

        def sleeping() -> dict[int, bytes] | None:
            found = commands()
            return found if any(b"sleep\x0060" in c for c in found.values()) else None

        # The recorder looks for new processes every 0.2 s: the sleep is the last to appear.
        running = wait_until(sleeping, timeout_s=30, what="the task's sleep to run")
        assert any(b"ansible-playbook" in c for c in running.values()), running
        assert runner_pids(run_dir.parent) <= set(running), running  # the runner's own process
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        expected = {
            "idle": (os.SCHED_IDLE, ours),
            "low": (os.SCHED_OTHER, min(ours + 10, 19)),
            "normal": (os.SCHED_OTHER, ours),
        }[priority]
        seen = {
            pid: (os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid))
            for pid in running
        }
        assert set(seen.values()) == {expected}, (seen, running)
        assert_sessions_weighed(priority, running)
        assert client.post("/info/job/active/cancel").status_code == 200
        wait_finished(client, job["id"])


CAP_SYS_ADMIN = 21


def may_weigh_every_session() -> bool:
    """Without CAP_SYS_ADMIN the kernel lowers a session's weight ten times a second, machine-wide
    (docs/jobs.md#priority): only then is every one of a job's sessions sure to be lowered."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    return False


def assert_sessions_weighed(priority: str, running: dict[int, bytes]) -> None:
    """Where autogroups weigh each session (this kernel's), the sessions the job made are weighed
    at its priority, and the session the daemon runs in (this test's) is left as it was."""
    ours = Path("/proc/self/autogroup").read_text()
    theirs = {pid: Path(f"/proc/{pid}/autogroup").read_text() for pid in running}
    made = {pid for pid in running if os.getsid(pid) != os.getsid(0)}
    assert any(b"ansible-playbook" in running[pid] for pid in made), running  # runner's pty
    assert all(theirs[pid] == ours for pid in set(running) - made), (ours, theirs)
    if may_weigh_every_session():
        nice = {"idle": 19, "low": min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)}
        expected = f"nice {nice.get(priority, 0)}"
        assert {theirs[pid].split(" ", 1)[1].strip() for pid in made} == {expected}, theirs


def refuse(*args: object) -> None:
    raise PermissionError(1, "Operation not permitted")


def test_a_refused_priority_runs_the_job_anyway_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandbox may forbid the call (a seccomp profile): the job runs at the daemon's priority
    and its log says why, rather than fail. The child is forked here, so it inherits the
    refusing call: the kernel's own refusal cannot be staged without such a sandbox."""
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: still ran\n"
    )
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    here:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    spec = RunSpec(
        private_data_dir=tmp_path / "run",
        playbook=playbook,
        inventory=inventory,
        extra_vars={},
        env={"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
        timeout_s=120,
        priority=Priority.IDLE,
    )
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_child_main, args=(theirs, spec))
    child.start()
    theirs.close()
    output: list[str] = []
    result: tuple[str, Any] | None = None
    while result is None and ours.poll(60):
        kind, value = ours.recv()
        if kind == "out":
            output.append(value)
        elif kind in ("result", "error"):
            result = (kind, value)
    child.join(10)
    assert result is not None, output
    assert result[0] == "result", (result, output)
    assert result[1].status == "successful", result
    text = "".join(output)
    assert text.startswith(
        "[clusterm: the kernel refused job_priority idle (Operation not permitted); "
        "this job runs at the daemon's own priority]"
    ), text
    assert "still ran" in text
