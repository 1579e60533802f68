"""Scaling benchmark part: how long a cancel takes to stop a running job, over 10 cancels.

Each cancel stops a fresh commission of HOSTS nodes (playbooks/cancel.yml: every host runs
`sleep 347`, 5 forks, so all of them at once). Once every host's sleep runs (seen in /proc), the
cancel is sent: POST /info/job/active/cancel, in a thread, while this one reads GET /jobs/{id}
every 20 ms. The latency is from sending the cancel to the first read of the job recorded as
ended (status no longer queued or running: canceled). The POST's own answer comes later: the
route waits for the end, looking every 0.1 s; its p50 is in the row's note. The request says
`cleanup: false`: a cancelled commission would otherwise run the cleanup playbook on its nodes,
which is not the cancel's latency.

Baseline: the same playbook and hosts through ansible-runner alone (clusterm's wrapper
app.ansible.runner, in this process, no daemon), cancelled through its cancel_callback once
every sleep runs: from the callback's first True to run_playbook's return.

Each row's note also says how many sleeps were still running when the run was over: clusterm
kills what a run leaves (app.ansible.leftovers); runner alone kills ansible-playbook's process
group, which Ansible's workers have left. This part kills what is left, by pid, after each run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from jobs_bench import Daemon

from app.ansible.runner import run_playbook

from .common import Row
from .jobs import (
    ACTIVE,
    FORKS,
    PLAYBOOKS,
    forks_env,
    proc_cmdline,
    register,
    runner_alone_spec,
    write_inventory,
)

CANCELS = 10
QUICK_CANCELS = 3
HOSTS = FORKS  # every host's sleep at once
SLEEP_MARK = "sleep 347"  # the playbook's long command (playbooks/cancel.yml)
READ_S = 0.02  # GET /jobs/{id} this often while a cancel is under way
STARTED_TIMEOUT_S = 120.0


def sleeps() -> list[int]:
    """The pids of the playbook's long commands that run now."""
    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and proc_cmdline(pid).strip() == SLEEP_MARK
    ]


def wait_for_sleeps(count: int, give_up: threading.Event | None = None) -> None:
    deadline = time.monotonic() + STARTED_TIMEOUT_S
    while len(sleeps()) < count:
        if time.monotonic() > deadline or (give_up is not None and give_up.is_set()):
            raise SystemExit(f"the job's {count} sleeps never all ran")
        time.sleep(0.02)


def kill_sleeps() -> int:
    """Kill, by pid, the sleeps a run left; how many there were."""
    left = sleeps()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(pid, signal.SIGKILL)
    while sleeps():
        time.sleep(0.02)
    return len(left)


def cancel_through(daemon: Daemon, names: list[str]) -> tuple[float, float, int]:
    """(seconds to the job recorded as ended, seconds to the POST's answer, sleeps left)."""
    http = daemon.http
    response = http.post("/commission/nodes", json={"nodes": names, "cleanup": False})
    response.raise_for_status()
    job_id = response.json()["id"]
    wait_for_sleeps(len(names))
    answered: list[float] = []
    failure: list[BaseException] = []

    def cancel(start: float) -> None:
        try:
            with httpx.Client(
                base_url=daemon.url, headers=dict(http.headers), timeout=60
            ) as client:
                client.post("/info/job/active/cancel").raise_for_status()
            answered.append(time.perf_counter() - start)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    start = time.perf_counter()
    sender = threading.Thread(target=cancel, args=(start,))
    sender.start()
    while (job := http.get(f"/jobs/{job_id}").json())["status"] in ACTIVE:
        time.sleep(READ_S)
    recorded = time.perf_counter() - start
    left = kill_sleeps()
    sender.join()
    if failure:
        raise SystemExit(f"the cancel of job {job_id} failed: {failure[0]}")
    if job["status"] != "canceled":
        raise SystemExit(f"job {job_id} ended {job['status']}, not canceled: {job}")
    return recorded, answered[0], left


def cancel_runner(work: Path, inventory: Path, playbook: Path) -> tuple[float, int]:
    """(seconds from the cancel_callback's first True to run_playbook's return, sleeps left)."""
    spec = runner_alone_spec(work, inventory, playbook)
    cancel = threading.Event()
    ended = threading.Event()
    asked: list[float] = []
    failure: list[BaseException] = []

    def ask() -> None:
        try:
            wait_for_sleeps(HOSTS, give_up=ended)
        except SystemExit as exc:  # reported by the main thread
            failure.append(exc)
        asked.append(time.perf_counter())
        cancel.set()  # stopped either way: a run that never started its sleeps ends too

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        result = run_playbook(spec, on_output=lambda text: None, should_cancel=cancel.is_set)
    finally:
        returned = time.perf_counter()
        ended.set()
        asker.join()
    left = kill_sleeps()
    if failure:
        raise SystemExit(f"ansible-runner alone: {failure[0]}")
    if result.status != "canceled":
        raise SystemExit(f"ansible-runner alone ended {result.status}, not canceled: {result}")
    return returned - asked[0], left


def run(quick: bool) -> list[Row]:
    count = QUICK_CANCELS if quick else CANCELS
    work = Path(tempfile.mkdtemp(prefix="scale-cancel-"))
    pb = work / "pb"
    pb.mkdir()
    shutil.copy(PLAYBOOKS / "cancel.yml", pb / "commission.yml")
    inventory = write_inventory(work / "inventory.yml", [f"h{i}" for i in range(HOSTS)])
    bare: list[float] = []
    bare_left = 0
    for _ in range(count):
        seconds, left = cancel_runner(work, inventory, pb / "commission.yml")
        bare.append(seconds * 1000)
        bare_left += left
    with forks_env():
        daemon = Daemon(work, pb)
    recorded: list[float] = []
    answered: list[float] = []
    through_left = 0
    try:
        for k in range(count):
            # Masters: a commission of workers needs a master, and these are their own. A
            # cancelled commission leaves its nodes failed: each cancel has its own.
            names = [f"c{k}-{i}" for i in range(HOSTS)]
            register(daemon, names, group="master")
            seconds, answer, left = cancel_through(daemon, names)
            recorded.append(seconds * 1000)
            answered.append(answer * 1000)
            through_left += left
    finally:
        daemon.stop()
        kill_sleeps()
    shutil.rmtree(work, ignore_errors=True)
    what = f"cancel of a running {HOSTS}-host job to its end recorded, {count} cancels"
    note = (
        f"POST's answer p50 {statistics.median(answered):.0f} ms; sleeps left running: "
        f"{through_left} (runner alone: {bare_left})"
    )
    return [
        Row(
            area="cancel",
            measure=f"{what}, p50",
            size=HOSTS,
            figure=statistics.median(recorded),
            unit="ms",
            baseline="ansible-runner alone, cancel_callback to return, p50",
            baseline_figure=statistics.median(bare),
            note=note,
        ),
        Row(
            area="cancel",
            measure=f"{what}, max",
            size=HOSTS,
            figure=max(recorded),
            unit="ms",
            baseline="ansible-runner alone, max",
            baseline_figure=max(bare),
        ),
    ]
