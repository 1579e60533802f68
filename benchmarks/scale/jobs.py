"""Scaling benchmark part: one 20-task job over 10 / 50 / 200 hosts, local connection.

At each size, against one daemon (jobs_bench.Daemon: `clusterm serve`, SQLite, as shipped):

- wall time: POST /commission/nodes to the job's end as GET /jobs/{id} reports it, against
  ansible-runner alone (clusterm's wrapper app.ansible.runner in this process, no daemon) and
  plain ansible-playbook: same playbook, same hosts, same forks;
- the daemon's peak RSS during that job (VmRSS sampled every 50 ms), against its RSS just before;
- p99 of `GET /info/job/active?since=` from 10 polling processes (each its own keep-alive client,
  every 0.1 s, as `clusterctl job get active --follow`) during a second run of the job, against
  the same polls with no job;
- from the playbook's end to every node settled and on the timeline. The playbook's end is
  ansible-playbook's exit, right after its recap: its process is watched in /proc every 5 ms,
  which costs no request. From then on the job, the nodes and the timeline are polled every
  5 ms until the job has ended, every node is commissioned and its HostSucceeded event is listed
  by GET /info/timeline. No baseline: a watch in this process, beside runner's read loop, saw
  ansible-playbook's exit only after runner had returned, on a busy machine.

The playbook (playbooks/job.yml): 19 debug tasks and one command task. Each task on each host
is a worker process forked by ansible-playbook (about 20 ms of CPU for a debug task); a command
task also runs its module in a new Python on the host (about 0.3 s of CPU). One command task at
200 hosts is a minute of CPU; with four runs at each size, more would not fit the part's budget
(about 8 minutes on 2 cores). Forks: 5, Ansible's default and clusterm's, set explicitly for all
three: the work is CPU-bound on 2 cores, and more forks only add contention (50 hosts, 20 debug
tasks, on a busy machine: 33 s with 5 forks, 47 s with 20).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from jobs_bench import PY, Daemon, local_vars, pct

from app.ansible.env import ansible_env
from app.ansible.runner import run_playbook
from app.ansible.spec import RunSpec
from app.config import load_settings

from .common import Row

SIZES = (10, 50, 200)
QUICK_SIZES = (3, 10)
FORKS = 5
POLLERS = 10
POLL_S = 0.1  # a poller's pace, as a following client's
TIGHT_S = 0.005  # the end of a job only: polled this often
IDLE_POLL_S = 3.0  # the baseline polls, no job running
TARGET_MS = 50.0
ACTIVE = ("queued", "running")
MASTER = "master-0"
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


# --- ansible-playbook's process, seen from outside --------------------------------------------


def proc_cmdline(pid: str) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode("utf-8", "replace")
        )
    except OSError:
        return ""


def proc_state(pid: str) -> tuple[str, str]:
    """(state, parent pid) of a process; ("", "") once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", ""
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], fields[1]


def find_playbook_process(playbook: Path) -> str | None:
    """The main ansible-playbook process running `playbook`: its workers are forks of it, with
    the same command line, and so are told apart by their parent."""
    mark = str(playbook)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        cmd = proc_cmdline(pid)
        if "ansible-playbook" in cmd and mark in cmd:
            _, parent = proc_state(pid)
            if "ansible-playbook" not in proc_cmdline(parent):
                return pid
    return None


class PlaybookWatch:
    """When ansible-playbook running `playbook` exits (after its recap): looked for every 20 ms
    until it appears, then its /proc entry is read every 5 ms (no request to the daemon)."""

    def __init__(self, playbook: Path) -> None:
        self.playbook = playbook
        self.exited = threading.Event()
        self.exited_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        pid = None
        while pid is None:
            if self._stop.wait(0.02):
                return
            pid = find_playbook_process(self.playbook)
        while True:
            state, _ = proc_state(pid)
            if state in ("", "Z", "X"):
                self.exited_at = time.perf_counter()
                self.exited.set()
                return
            if self._stop.wait(TIGHT_S):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --- the three ways to run the playbook -------------------------------------------------------


def write_inventory(path: Path, hosts: list[str]) -> Path:
    """The inventory clusterm gives a commission of worker `hosts` (app.ansible.inventory),
    in short: the targets, and the cluster's master beside them."""
    inventory = {
        "all": {
            "hosts": {h: local_vars() for h in [*hosts, MASTER]},
            "children": {
                "targets": {"hosts": dict.fromkeys(hosts)},
                "workers": {"hosts": dict.fromkeys(hosts)},
                "masters": {"hosts": {MASTER: None}},
            },
        }
    }
    path.write_text(yaml.safe_dump(inventory))
    return path


def run_plain(work: Path, inventory: Path, playbook: Path) -> float:
    env = {
        **os.environ,
        "PATH": f"{Path(PY).parent}:{os.environ['PATH']}",
        "ANSIBLE_FORKS": str(FORKS),
    }
    start = time.perf_counter()
    with open(work / "plain.out", "wb") as out:
        subprocess.run(  # noqa: S603 - the venv's ansible-playbook
            [str(Path(PY).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
        )
    return time.perf_counter() - start


def runner_alone_spec(work: Path, inventory: Path, playbook: Path) -> RunSpec:
    """ansible-runner alone, through clusterm's wrapper: the daemon's Ansible environment with the
    same forks, in a fresh private data dir under `work`."""
    settings = load_settings(
        data_dir=work / "bare-data",
        ssh_host_key_policy="off",
        ansible_env={"ANSIBLE_FORKS": str(FORKS)},
    )
    shutil.rmtree(work / "bare", ignore_errors=True)
    return RunSpec(
        private_data_dir=work / "bare",
        playbook=playbook,
        inventory=inventory,
        extra_vars={},
        env=ansible_env(settings),
        timeout_s=3600,
    )


def run_runner(work: Path, inventory: Path, playbook: Path) -> float:
    """ansible-runner alone: its wall time."""
    spec = runner_alone_spec(work, inventory, playbook)
    start = time.perf_counter()
    result = run_playbook(spec, on_output=lambda text: None, should_cancel=lambda: False)
    end = time.perf_counter()
    if result.status != "successful":
        raise SystemExit(f"ansible-runner alone: {result}")
    return end - start


@dataclass(frozen=True)
class Through:
    wall_s: float  # POST to the job's end
    settle_s: float  # ansible-playbook's exit to every node settled and on the timeline
    end_s: float  # ansible-playbook's exit to the job's end read by GET /jobs/{id}
    rest_mb: float
    peak_mb: float


def run_through(daemon: Daemon, names: list[str], playbook: Path) -> Through:
    http = daemon.http
    rest = daemon.rss_kb()
    peak = rest
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, daemon.rss_kb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    watch = PlaybookWatch(playbook)
    start = time.perf_counter()
    try:
        response = http.post("/commission/nodes", json={"nodes": names})
        response.raise_for_status()
        job_id = response.json()["id"]
        # Until the playbook ends, a look at the job now and then only: a job that ended without
        # running its playbook must not be waited for for ever.
        while not watch.exited.wait(0.5):
            job = http.get(f"/jobs/{job_id}").json()
            if job["status"] not in ACTIVE:
                raise SystemExit(f"job {job_id} ended before its playbook did: {job}")
        while (job := http.get(f"/jobs/{job_id}").json())["status"] in ACTIVE:
            time.sleep(TIGHT_S)
        ended = time.perf_counter()
        if job["status"] != "successful":
            raise SystemExit(f"job {job_id} did not succeed: {job}")
        while not settled(http, job_id, names):
            time.sleep(TIGHT_S)
        settled_at = time.perf_counter()
    finally:
        watch.stop()
        done.set()
        sampler.join()
    return Through(
        wall_s=ended - start,
        settle_s=settled_at - watch.exited_at,
        end_s=ended - watch.exited_at,
        rest_mb=rest / 1024,
        peak_mb=peak / 1024,
    )


def settled(http: httpx.Client, job_id: int, names: list[str]) -> bool:
    """Every node of the job commissioned, and its HostSucceeded event on the timeline."""
    page = http.get(
        "/info/timeline", params={"job": job_id, "reason": "HostSucceeded", "limit": 1000}
    ).json()
    if {e["node"] for e in page["items"]} < set(names):
        return False
    listed = http.get("/info/nodes", params={"state": "commissioned"}).json()
    return set(names) <= {n["name"] for n in listed}


# --- polling during the job -------------------------------------------------------------------


def ready(_: int) -> None:
    """Run once in each polling process before the clock: its imports are done by then."""
    time.sleep(0.3)  # long enough that every process of the pool takes one


def poll_client(url: str, headers: dict[str, str], seconds: float, until_end: bool) -> list[float]:
    """One client's latencies (ms). until_end: poll the running job until it has ended, and
    count its answers only; else poll for `seconds`, whatever the answer (404: no job)."""
    latencies: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        http.get("/healthz")  # connect before the clock runs
        stop = time.monotonic() + seconds
        cursor = 0
        while time.monotonic() < stop:
            start = time.perf_counter()
            response = http.get("/info/job/active", params={"since": cursor})
            elapsed = (time.perf_counter() - start) * 1000
            if until_end and (
                response.status_code != 200
                or response.headers.get("X-Clusterm-Job-Status") not in ACTIVE
            ):
                break
            latencies.append(elapsed)
            if response.status_code == 200:
                cursor = response.json()["next_line"] - 1
            time.sleep(POLL_S)
    return latencies


def run_polled(daemon: Daemon, names: list[str]) -> tuple[list[float], list[float]]:
    """(latencies with no job, latencies during the job), from POLLERS processes."""
    ctx = multiprocessing.get_context("spawn")
    headers = dict(daemon.http.headers)
    with ctx.Pool(POLLERS) as pool:
        pool.map(ready, range(POLLERS), chunksize=1)
        args = [(daemon.url, headers, IDLE_POLL_S, False)] * POLLERS
        idle = [ms for one in pool.starmap(poll_client, args) for ms in one]
        response = daemon.http.post("/commission/nodes", json={"nodes": names})
        response.raise_for_status()
        job_id = response.json()["id"]
        deadline = time.monotonic() + 120
        while "TASK [" not in daemon.http.get("/info/job/active", params={"format": "text"}).text:
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job_id} never started its tasks")
            time.sleep(POLL_S)
        args = [(daemon.url, headers, 3600.0, True)] * POLLERS
        busy = [ms for one in pool.starmap(poll_client, args) for ms in one]
    if not busy:
        raise SystemExit(f"job {job_id} ended before the pollers' first answer")
    while (job := daemon.http.get(f"/jobs/{job_id}").json())["status"] in ACTIVE:
        time.sleep(POLL_S)
    if job["status"] != "successful":
        raise SystemExit(f"job {job_id} did not succeed: {job}")
    return idle, busy


# --- the part ---------------------------------------------------------------------------------


@contextmanager
def forks_env() -> Iterator[None]:
    """The daemon started inside gets ANSIBLE_FORKS through its own setting (ansible_env)."""
    name = "CLUSTERM_ANSIBLE_ENV"
    before = os.environ.get(name)
    os.environ[name] = json.dumps({"ANSIBLE_FORKS": str(FORKS)})
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def register(daemon: Daemon, names: list[str], group: str = "worker") -> None:
    body = [
        {"name": n, "address": "127.0.0.1", "host_group": group, "vars": local_vars()}
        for n in names
    ]
    daemon.http.post("/nodes", json=body).raise_for_status()


def commission_master(daemon: Daemon) -> None:
    """A worker is commissioned into a cluster that has a master: this one, once."""
    register(daemon, [MASTER], group="master")
    job, _ = daemon.job([MASTER], {})
    if job["status"] != "successful":
        raise SystemExit(f"the master's commission did not succeed: {job}")
    # FastAPI builds a router's routes on the first request to any of them (tens of ms on a
    # loaded machine): the routes the settling is read through are built here, not in the clock.
    if not settled(daemon.http, job["id"], [MASTER]):
        raise SystemExit(f"the master's commission is not on the timeline: {job}")


def run(quick: bool) -> list[Row]:
    sizes = QUICK_SIZES if quick else SIZES
    work = Path(tempfile.mkdtemp(prefix="scale-jobs-"))
    pb = work / "pb"
    pb.mkdir()
    # The daemon runs commission.yml; runner alone and ansible-playbook run job.yml, the same
    # playbook under another name, so that each run's ansible-playbook is told apart in /proc.
    shutil.copy(PLAYBOOKS / "job.yml", pb / "job.yml")
    shutil.copy(PLAYBOOKS / "job.yml", pb / "commission.yml")
    measures: dict[str, list[Row]] = {}

    def add(row: Row) -> None:
        measures.setdefault(row.measure, []).append(row)

    with forks_env():
        daemon = Daemon(work, pb)
    try:
        commission_master(daemon)
        for n in sizes:
            quiet = [f"s{n}a-{i:03d}" for i in range(n)]
            polled = [f"s{n}b-{i:03d}" for i in range(n)]
            register(daemon, quiet + polled)
            inventory = write_inventory(work / f"inventory-{n}.yml", quiet)
            plain_s = run_plain(work, inventory, pb / "job.yml")
            runner_s = run_runner(work, inventory, pb / "job.yml")
            through = run_through(daemon, quiet, pb / "commission.yml")
            idle, busy = run_polled(daemon, polled)
            print(
                f"jobs {n} hosts: clusterm {through.wall_s:.1f} s, runner {runner_s:.1f} s, "
                f"plain {plain_s:.1f} s, settle {through.settle_s * 1000:.0f} ms",
                flush=True,
            )
            what = f"20-task job ({FORKS} forks), POST to its end"
            add(
                Row(
                    area="job",
                    measure=f"{what} vs ansible-playbook",
                    size=n,
                    figure=through.wall_s,
                    unit="s",
                    baseline="ansible-playbook",
                    baseline_figure=plain_s,
                )
            )
            add(
                Row(
                    area="job",
                    measure=f"{what} vs ansible-runner alone",
                    size=n,
                    figure=through.wall_s,
                    unit="s",
                    baseline="ansible-runner alone",
                    baseline_figure=runner_s,
                )
            )
            add(
                Row(
                    area="job",
                    measure="daemon peak RSS during the job",
                    size=n,
                    figure=through.peak_mb,
                    unit="MB",
                    baseline="at rest",
                    baseline_figure=through.rest_mb,
                )
            )
            p99 = pct(busy, 0.99)
            add(
                Row(
                    area="job",
                    measure=f"GET /info/job/active?since= p99, {POLLERS} polling processes",
                    size=n,
                    figure=p99,
                    unit="ms",
                    baseline="same polls, no job",
                    baseline_figure=pct(idle, 0.99),
                    target=f"<= {TARGET_MS:.0f} ms",
                    met=p99 <= TARGET_MS,
                    flat=True,
                    note=f"{len(busy)} polls",
                )
            )
            add(
                Row(
                    area="job",
                    measure="playbook's end to every node settled and on the timeline",
                    size=n,
                    figure=through.settle_s * 1000,
                    unit="ms",
                    # The nodes and their events are written with the job's end, in one
                    # transaction: the rest is the time of the reads that confirm it.
                    note=f"job's end read after {through.end_s * 1000:.0f} ms",
                )
            )
    finally:
        daemon.stop()
    shutil.rmtree(work, ignore_errors=True)
    return [r for rows in measures.values() for r in rows]
