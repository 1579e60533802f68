"""What a run leaves running is killed, and exactly that: a detached task, ansible-playbook after
the daemon and its runner process died, but never an operator's process reading a job's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ansible import inventory, leftovers, process
from app.ansible.spec import RunSpec, RunStatus
from tests.jobs.conftest import LOCAL_VARS, local_node, runner_pids
from tests.jobs.daemon import Daemon
from tests.polling import wait_until

PLAYBOOKS = Path(__file__).parent / "playbooks"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # Processes, not the store: SQLite only (a real daemon keeps its database in its data dir).
    return f"sqlite:///{tmp_path / 'clusterm.db'}"


def commandline_holds(needle: bytes) -> set[int]:
    """Live processes whose command line holds `needle`: how an observer outside clusterm sees
    them, independent of clusterm's own record."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and running(int(entry.name)):
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"  # a zombie has ended: only its parent's wait is missing


def descendants(pids: set[int]) -> set[int]:
    """`pids` and every process below them, now."""
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_bytes().rpartition(b")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, set()).add(int(entry.name))
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def test_a_task_that_detaches_a_process_leaves_nothing_running(tmp_path: Path) -> None:
    """The process leaves ansible-playbook's session and tree: the record still has it."""
    run_dir, pid_file, sleep_s = tmp_path / "run", tmp_path / "detached.pid", "61.91"
    local = inventory.Host(
        name="m1",
        address="127.0.0.1",
        ssh_port=22,
        ssh_user="root",
        host_group=inventory.MASTER,
        vars=LOCAL_VARS,
    )
    spec = RunSpec(
        private_data_dir=run_dir,
        playbook=PLAYBOOKS / "detach.yml",
        inventory=inventory.write_inventory(
            tmp_path / "hosts.yml", inventory.node_inventory(targets=[local])
        ),
        extra_vars={"sleep_s": sleep_s, "pid_file": str(pid_file)},
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        timeout_s=60,
    )
    output: list[str] = []
    result = process.run_playbook(spec, on_output=output.append, should_cancel=lambda: False)

    assert result.status == RunStatus.SUCCESSFUL, output  # so the process did run, detached
    detached = int(pid_file.read_text())
    assert detached in {pid for pid, _ in leftovers.recorded(run_dir)}
    assert commandline_holds(b"sleep\x00" + sleep_s.encode()) == set()
    assert leftovers.running(run_dir) == set()


def test_a_pid_given_to_another_process_since_is_left_alone(tmp_path: Path) -> None:
    """A record names a pid with its start time: a later process given that pid is not the run's."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        stat = Path(f"/proc/{bystander.pid}/stat").read_bytes().rpartition(b")")[2].split()
        started = int(stat[19])  # field 22
        (tmp_path / leftovers.RECORD_NAME).write_text(f"{bystander.pid} {started - 1}\n")
        assert leftovers.kill_leftovers(tmp_path) == 0
        assert bystander.poll() is None

        (tmp_path / leftovers.RECORD_NAME).write_text(f"{bystander.pid} {started}\n")
        assert leftovers.kill_leftovers(tmp_path) == 1
        assert bystander.wait(timeout=10) == -signal.SIGKILL
    finally:
        bystander.kill()
        bystander.wait()


@pytest.fixture
def reader() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_restart_after_everything_was_killed_kills_the_job_and_spares_a_reader(
    daemon: Daemon, reader: list[subprocess.Popen[bytes]]
) -> None:
    client = daemon.start()
    client.post("/nodes", json=[local_node("m1", "master")]).raise_for_status()
    sleep_s = "61.53"
    job = client.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": sleep_s}}
    ).json()
    job_dir = daemon.data_dir / "jobs" / str(job["id"])
    task = b"sleep\x00" + sleep_s.encode()
    wait_until(lambda: commandline_holds(task), timeout_s=30, what="the job's Wait task to run")

    # An operator follows the job's log: its command line names the job's directory, as
    # ansible-playbook's does.
    log_file = job_dir / "main" / "inventory" / "hosts.yml"
    tail = subprocess.Popen(["tail", "-f", str(log_file)], stdout=subprocess.DEVNULL)
    reader.append(tail)
    # The job's processes as an observer sees them: those naming the job's directory, but for
    # the reader, and everything below them (the task's sleep among them).
    ansible = descendants(commandline_holds(str(job_dir).encode() + b"/") - {tail.pid})
    assert commandline_holds(task) <= ansible

    # Everything of clusterm dies at once, the daemon stopped first so that it cannot clean up
    # after its runner process: ansible-playbook and its workers run on, orphaned.
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    runners = runner_pids(job_dir)
    assert runners
    for pid in runners:
        os.kill(pid, signal.SIGKILL)
    daemon.stop(signal.SIGKILL)
    wait_until(
        lambda: not any(running(pid) for pid in runners),
        timeout_s=10,
        what="the runner process to die",
    )
    assert commandline_holds(task), "the job's task should have outlived clusterm"

    client = daemon.start()
    assert not [pid for pid in ansible if running(pid)], "the restart kills what the job left"
    assert commandline_holds(task) == set()
    assert tail.poll() is None, "the operator's tail -f must survive"
    last = client.get("/info/job/last").json()
    assert last["id"] == job["id"]
    assert last["status"] == "interrupted"


RECORDING = """
import subprocess, sys
from pathlib import Path
from app.ansible import leftovers

run_dir = Path(sys.argv[1])
recorder = leftovers.Recorder(run_dir, interval_s=3600)
recorder.start()  # the first look: this process alone
# A detached process: its parent (sh) ends at once, and it is re-parented to this one.
subprocess.run(["sh", "-c", f"sleep 60 & echo $! > {run_dir / 'detached'}"], check=True)
print("started", flush=True)
sys.stdin.readline()  # the test starts a process of its own meanwhile
recorder.stop()  # the last look
"""


def test_the_record_adds_what_the_run_started_since_its_last_look_and_nothing_else(
    tmp_path: Path,
) -> None:
    """Each look reads only the processes new since the one before: a process the run started
    meanwhile is recorded, even once its parent has gone; another one on the host is not."""
    bystander = None
    with subprocess.Popen(
        [sys.executable, "-c", RECORDING, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as run:
        try:
            assert run.stdout is not None
            assert run.stdin is not None
            assert run.stdout.readline() == b"started\n"
            bystander = subprocess.Popen(["sleep", "60"])
            run.stdin.write(b"\n")
            run.stdin.close()
            assert run.wait(timeout=30) == 0
            detached = int((tmp_path / "detached").read_text())
            pids = [pid for pid, _ in leftovers.recorded(tmp_path)]
            assert pids[0] == run.pid
            assert detached in pids
            assert bystander.pid not in pids
            assert leftovers.kill_leftovers(tmp_path) == 1  # the detached sleep, and only it
            assert not running(detached)
            assert bystander.poll() is None
        finally:
            run.kill()
            if bystander is not None:
                bystander.kill()
                bystander.wait()
