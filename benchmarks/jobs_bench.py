"""Jobs benchmarks: run with `.venv/bin/python benchmarks/jobs_bench.py`.

Starts a real `clusterm serve` on loopback with its own data dir, runs real jobs through it
(ansible-runner, local connection) and writes the figures to docs/benchmarks.md under "## Jobs",
each with its target and its ratio to a baseline measured in the same run:

1. overhead: one playbook (20 hosts x 20 tasks) through clusterm, from the POST to the job's
   recorded end, vs ansible-runner alone (clusterm's wrapper, no daemon) and vs plain
   ansible-playbook, all three with the same forks, interleaved, median of `--runs`;
2. reading a finished 5 MB / 20,000-line log (JSON, text) and `since=` with 100 new lines,
   against the same server's /healthz;
3. the event handler's cost per event, against a handler that does nothing;
4. p99 of 20 clients polling `since=` while a job prints 1,000 lines/s, against the same polls
   with no job;
5. the daemon's peak RSS while a job prints 500 MB (`--big-mb`), against its RSS at rest.

`--only overhead` (or any of the names above, repeated) runs just those parts and replaces just
their rows in the doc.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.ansible.logbuffer import LogBuffer  # noqa: E402
from app.ansible.runner import event_handler, run_playbook  # noqa: E402
from app.ansible.spec import RunSpec  # noqa: E402

PLAYBOOKS = REPO / "tests" / "jobs" / "playbooks"
DOC = REPO / "docs" / "benchmarks.md"
PY = sys.executable
PARTS = ("events", "overhead", "reads", "polling", "memory")
# A job through clusterm against ansible-runner run alone by clusterm's wrapper, and against
# plain ansible-playbook (see docs/benchmarks.md, "Jobs: what the figures above rest on").
OVERHEAD_VS_RUNNER = 1.03
OVERHEAD_VS_PLAIN = 1.10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, work: Path, playbook_dir: Path) -> None:
        self.data_dir = work / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "CLUSTERM_PLAYBOOK_DIR": str(playbook_dir),
            "CLUSTERM_LOG_LEVEL": "warning",
            # The drift watch would run its own playbook now and then: not what is measured.
            "CLUSTERM_DRIFT_INTERVAL_S": "0",
        }
        env.pop("CLUSTERM_DATABASE_URL", None)
        cmd = [PY, "-c", "from app.cli import main; main()", "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter
            [*cmd, "--data-dir", str(self.data_dir)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "daemon.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the daemon did not start; see daemon.log")
            time.sleep(0.1)
        token = (self.data_dir / "admin.token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def rss_kb(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def job(
        self, nodes: list[str], extra_vars: dict[str, Any], poll_s: float = 0.1
    ) -> tuple[dict[str, Any], float]:
        """Run a commission to its end: the job's row and the seconds the client saw, from its
        POST to the poll that saw the job ended (up to `poll_s` late)."""
        start = time.perf_counter()
        response = self.http.post(
            "/commission/nodes", json={"nodes": nodes, "extra_vars": extra_vars}
        )
        response.raise_for_status()
        job_id = response.json()["id"]
        while True:
            job = self.http.get(f"/jobs/{job_id}").json()
            if job["status"] not in ("queued", "running"):
                return job, time.perf_counter() - start
            time.sleep(poll_s)  # each poll costs the daemon ~2 ms of CPU, taken from Ansible

    def recorded_job(
        self, nodes: list[str], extra_vars: dict[str, Any], poll_s: float = 1.0
    ) -> tuple[dict[str, Any], float]:
        """Run a commission to its end: the job's row and its seconds from the POST to the end
        the daemon recorded (`finished_at`, same host, same clock). The client's polls, rare
        here, add neither their period nor much of their CPU to the figure."""
        posted = dt.datetime.now(dt.UTC)
        job, _ = self.job(nodes, extra_vars, poll_s=poll_s)
        finished = dt.datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
        return job, (finished - posted).total_seconds()

    def decommission(self, nodes: list[str]) -> None:
        response = self.http.post("/decommission/nodes", json={"nodes": nodes})
        response.raise_for_status()
        job_id = response.json()["id"]
        while self.http.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running"):
            time.sleep(0.2)

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(30)


def local_vars() -> dict[str, Any]:
    return {"ansible_connection": "local", "ansible_python_interpreter": PY}


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- 1. overhead ------------------------------------------------------------------------------


def prepare_overhead(work: Path, daemon: Daemon) -> None:
    """The playbook, its inventory for plain ansible-playbook, and the same hosts as nodes."""
    hosts = [f"h{i:02d}" for i in range(20)]
    tasks = [
        {
            "name": f"task {t}",
            "ansible.builtin.debug": {"msg": f"task {t} {{{{ inventory_hostname }}}}"},
        }
        for t in range(20)
    ]
    playbook = [{"name": "bench", "hosts": "targets", "gather_facts": False, "tasks": tasks}]
    (work / "pb" / "overhead.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    inventory = {
        "all": {
            "hosts": {h: local_vars() for h in hosts},
            "children": {"targets": {"hosts": dict.fromkeys(hosts)}, "masters": {"hosts": {}}},
        }
    }
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory))
    body = [
        {"name": h, "address": "127.0.0.1", "host_group": "master", "vars": local_vars()}
        for h in hosts
    ]
    daemon.http.post("/nodes", json=body).raise_for_status()


# --- 2. reading a finished log ----------------------------------------------------------------


def curl_ms(daemon: Daemon, path: str, n: int) -> list[float]:
    """Server time as curl sees it (`time_total`, no process start-up): the support engineer's
    client, and one that costs next to nothing itself."""
    out = subprocess.run(  # noqa: S603 - curl, our own URL
        [
            shutil.which("curl") or "curl",
            "-s",
            "-H",
            f"Authorization: {daemon.http.headers['Authorization']}",
            "-w",
            "%{time_total}\\n",
            *[arg for _ in range(n) for arg in ("-o", "/dev/null", daemon.url + path)],
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [float(t) * 1000 for t in out.stdout.split()]


def bench_reads(daemon: Daemon) -> dict[str, float]:
    line = "y" * 240
    job, _ = daemon.job(["m1"], {"emit_bytes": 5_000_000, "emit_line": line})
    assert job["status"] == "successful", job
    http = daemon.http
    last = http.get("/info/job/last").json()
    lines = last["next_line"] - 1
    size = sum(len(x.encode()) + 1 for x in last["logs"])
    since = lines - 100
    assert len(http.get("/info/job/last", params={"since": since}).json()["logs"]) == 100
    n = 60
    for _ in range(5):  # warm up
        http.get("/info/job/last")
    paths = {
        "base": "/healthz",
        "json": "/info/job/last",
        "text": "/info/job/last?format=text",
        "since": f"/info/job/last?since={since}",
    }
    figures: dict[str, float] = {"lines": lines, "mb": size / 1e6}
    for name, path in paths.items():
        figures[f"{name}_ms"] = statistics.median(curl_ms(daemon, path, n))
        figures[f"{name}_py_ms"] = statistics.median(timed(lambda p=path: http.get(p).content, n))
    return figures


# --- 3. event handling ------------------------------------------------------------------------


def bench_events() -> dict[str, float]:
    # As in a job: the default cap (the database gets the lines from another thread).
    buf = LogBuffer(cap_bytes=8 * 1024 * 1024)
    stats: dict[str, dict[str, int]] = {}
    handler = event_handler(buf.append_text, stats)
    events = [
        {
            "event": "runner_on_ok",
            "uuid": str(i),
            "counter": i,
            "stdout": f"\x1b[0;32mok: [host{i % 20:02d}] => {{\x1b[0m\r\n"
            f'\x1b[0;32m    "msg": "task {i}"\x1b[0m\r\n\x1b[0;32m}}\x1b[0m',
            "event_data": {"host": f"host{i % 20:02d}", "task": f"task {i}"},
        }
        for i in range(200_000)
    ]

    def noop(event: dict[str, Any]) -> bool:
        return False

    start = time.perf_counter()
    for event in events:
        noop(event)
    base = (time.perf_counter() - start) / len(events) * 1e6
    start = time.perf_counter()
    for event in events:
        handler(event)
    per = (time.perf_counter() - start) / len(events) * 1e6
    return {"base_us": base, "event_us": per}


# --- 4. polling while a job prints ------------------------------------------------------------


def poll_latencies(daemon: Daemon, seconds: float, clients: int = 20) -> list[float]:
    """`clients` processes (not threads: a client must not wait on another's GIL), each polling
    `since=` every 0.1 s with its own cursor, as `clusterctl job get active --follow` would."""
    ctx = multiprocessing.get_context("spawn")
    args = [(daemon.url, dict(daemon.http.headers), seconds)] * clients
    with ctx.Pool(clients) as pool:
        return [ms for one in pool.starmap(poll_client, args) for ms in one]


def poll_client(url: str, headers: dict[str, str], seconds: float) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        http.get("/healthz")  # connect before the clock runs
        stop = time.monotonic() + seconds
        cursor = 0
        while time.monotonic() < stop:
            start = time.perf_counter()
            response = http.get("/info/job/active", params={"since": cursor})
            latencies.append((time.perf_counter() - start) * 1000)
            if response.status_code == 200:
                cursor = response.json()["next_line"] - 1
            time.sleep(0.1)
    return latencies


def bench_polling(daemon: Daemon, seconds: float) -> dict[str, float]:
    daemon.decommission(["m1"])
    idle = poll_latencies(daemon, seconds / 2)
    response = daemon.http.post(
        "/commission/nodes",
        json={
            "nodes": ["m1"],
            "extra_vars": {"emit_bytes": int(seconds * 1000 * 110), "emit_rate": 1000},
        },
    )
    response.raise_for_status()
    deadline = time.monotonic() + 120
    while "EMIT BEGIN" not in daemon.http.get("/info/job/active", params={"format": "text"}).text:
        if time.monotonic() > deadline:
            raise SystemExit("the paced job never started printing")
        time.sleep(0.05)
    busy = poll_latencies(daemon, seconds)
    job_id = response.json()["id"]
    while daemon.http.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running"):
        time.sleep(0.1)
    return {"idle_p99_ms": pct(idle, 0.99), "p99_ms": pct(busy, 0.99), "polls": len(busy)}


# --- 5. memory while a job prints a lot -------------------------------------------------------


def bench_memory(daemon: Daemon, megabytes: int) -> dict[str, float]:
    daemon.decommission(["m1"])
    rest = daemon.rss_kb()
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, daemon.rss_kb())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    job, seconds = daemon.job(["m1"], {"emit_bytes": megabytes * 1_000_000})
    done.set()
    sampler.join()
    assert job["status"] == "successful", job
    kept = daemon.http.get("/info/job/last").json()
    return {
        "rest_mb": rest / 1024,
        "peak_mb": max(peak, daemon.rss_kb("VmHWM")) / 1024,
        "seconds": seconds,
        "mb": megabytes,
        "dropped_mb": kept["dropped_bytes"] / 1e6,
    }


# --- report -----------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    load = os.getloadavg()[0]
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {mem} GiB, "
        f"Python {platform.python_version()}, load average {load:.1f} at the start"
    )


def row(what: str, figure: str, target: str, baseline: str, ratio: float, ok: bool) -> str:
    verdict = "met" if ok else "MISSED"
    return f"| {what} | {figure} | {target} | {baseline} | {ratio:.2f}x | {verdict} |"


def report(results: dict[str, dict[str, float]], command: str, started: str, host: str) -> str:
    rows = []
    if "overhead" in results:
        o = results["overhead"]
        how = (
            f"forks {o['forks']:.0f}, median of {o['runs']:.0f}, POST to the job's recorded "
            f"end; the client saw {o['client_s']:.2f} s"
        )
        for versus, name, target, extra in (
            (
                "runner",
                "ansible-runner alone",
                OVERHEAD_VS_RUNNER,
                f" ({o['runner_s'] / o['plain_s']:.2f}x plain, round by round "
                f"{o['runner_vs_plain_paired']:.2f}x)",
            ),
            ("plain", "ansible-playbook", OVERHEAD_VS_PLAIN, ""),
        ):
            ratio = o["clusterm_s"] / o[f"{versus}_s"]
            paired = f"; round by round {o[f'vs_{versus}_paired']:.2f}x"
            rows.append(
                row(
                    f"20 hosts x 20 tasks through clusterm vs {name} ({how}{paired})",
                    f"{o['clusterm_s']:.2f} s",
                    f"<= {target:.2f}x",
                    f"{name} {o[f'{versus}_s']:.2f} s{extra}",
                    ratio,
                    ratio <= target,
                )
            )
    if "reads" in results:
        r = results["reads"]
        base = f"/healthz {r['base_ms']:.2f} ms"
        what = f"GET /info/job/last, {r['mb']:.1f} MB / {r['lines']:.0f} lines"
        for key, label, target in (
            ("json", "JSON", 30),
            ("text", "?format=text", 15),
            ("since", "?since= returning 100 lines", 3),
        ):
            figure, py = r[f"{key}_ms"], r[f"{key}_py_ms"]
            rows.append(
                row(
                    f"{what}, {label} (p50, curl; Python httpx client: {py:.1f} ms)",
                    f"{figure:.2f} ms",
                    f"<= {target} ms",
                    base,
                    figure / r["base_ms"],
                    figure <= target,
                )
            )
    if "events" in results:
        e = results["events"]
        rows.append(
            row(
                "event handler (log buffer), per event",
                f"{e['event_us']:.2f} us",
                "<= 20 us",
                f"no-op handler {e['base_us']:.2f} us",
                e["event_us"] / e["base_us"],
                e["event_us"] <= 20,
            )
        )
    if "polling" in results:
        p = results["polling"]
        rows.append(
            row(
                f"20 client processes polling ?since= while a job prints 1,000 lines/s "
                f"(p99, {p['polls']:.0f} polls)",
                f"{p['p99_ms']:.1f} ms",
                "<= 50 ms",
                f"same polls, no job: {p['idle_p99_ms']:.1f} ms",
                p["p99_ms"] / p["idle_p99_ms"],
                p["p99_ms"] <= 50,
            )
        )
    if "memory" in results:
        m = results["memory"]
        rows.append(
            row(
                f"daemon peak RSS while a job prints {m['mb']:.0f} MB ({m['seconds']:.0f} s)",
                f"{m['peak_mb']:.0f} MB",
                "<= 250 MB",
                f"at rest {m['rest_mb']:.0f} MB",
                m["peak_mb"] / m["rest_mb"],
                m["peak_mb"] <= 250,
            )
        )
    lines = [
        "## Jobs",
        "",
        f"- Date: {started}",
        f"- Machine: {host}",
        f"- Command: `{command}`",
        "",
        "| What | Figure | Target | Baseline (same run) | Ratio | |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    return "\n".join(lines)


def merge_rows(section: str, note: str) -> str:
    """The doc's current "## Jobs" section with the rows `section` re-measured replaced (a row
    is known by its text before the first parenthesis) and `note` added to its header: the
    other rows, and the header lines that describe their run, stay as they were."""
    text = DOC.read_text() if DOC.exists() else ""
    start = text.find("## Jobs\n")
    if start < 0:
        return section
    end = text.find("\n## ", start + 1)
    old = text[start : end if end >= 0 else None].strip("\n").splitlines()

    def key(line: str) -> str:
        return line.split("|")[1].split(" (")[0].strip()

    table = [x for x in section.splitlines() if x.startswith("|")]
    fresh = {key(x): x for x in table[2:]}
    old_rows = [x for x in old if x.startswith("|")][2:]
    # An old row whose text is the start of a fresh one's is that row, as it used to be named.
    kept = [x for x in old_rows if not any(k != key(x) and k.startswith(key(x)) for k in fresh)]
    rows = [fresh.pop(key(x), x) for x in kept] + list(fresh.values())
    # The header's lines, but an earlier run's note of the same kind: this one replaces it.
    head = [x for x in old[1:] if x and not x.startswith(("|", "- Re-measured alone"))]
    return "\n".join([old[0], "", *head, f"- {note}", "", *table[:2], *rows, ""])


def write_doc(section: str, heading: str = "## Jobs") -> None:
    """Replace the section under `heading` in docs/benchmarks.md (or add it at the end); the
    other sections are left alone. The other benchmarks write theirs through this too."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = text.find(heading + "\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="overhead runs (median)")
    parser.add_argument(
        "--forks", type=int, default=5, help="ANSIBLE_FORKS of every overhead run (all three)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable); the doc keeps the other rows",
    )
    parser.add_argument("--poll-seconds", type=float, default=20)
    parser.add_argument("--big-mb", type=int, default=500, help="0 skips the memory benchmark")
    parser.add_argument("--no-write", action="store_true", help="print, do not update the doc")
    args = parser.parse_args()
    command = " ".join(["python benchmarks/jobs_bench.py", *sys.argv[1:]])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()  # with the load average before anything here ran
    work = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    pb = work / "pb"
    shutil.copytree(PLAYBOOKS, pb)
    shutil.copy(pb / "job.yml", pb / "commission.yml")
    shutil.copy(pb / "job.yml", pb / "decommission.yml")
    results: dict[str, dict[str, float]] = {}
    parts = set(args.only or PARTS)
    # The same forks for plain ansible-playbook, runner alone and the daemon's jobs: all three
    # read it from the environment this process passes on.
    os.environ["ANSIBLE_FORKS"] = str(args.forks)

    def done(name: str, figures: dict[str, float]) -> None:
        results[name] = figures
        print(name, figures, flush=True)
        if not args.no_write:  # after each phase: a long run that dies still leaves figures
            section = report(results, command, started, host)
            if args.only:
                section = merge_rows(
                    section,
                    f"Re-measured alone ({', '.join(args.only)}): {started}, `{command}`, "
                    f"on {host}",
                )
            write_doc(section)

    if "events" in parts:
        done("events", bench_events())
    daemon = Daemon(work, pb)
    try:
        if "overhead" in parts:
            # The overhead run uses its own playbook: commission.yml is swapped for it meanwhile.
            shutil.copy(pb / "job.yml", pb / "job.keep")
            prepare_overhead(work, daemon)
            shutil.copy(pb / "overhead.yml", pb / "commission.yml")
            shutil.copy(pb / "overhead.yml", pb / "decommission.yml")
            done("overhead", bench_overhead_runs(work, daemon, args.runs, args.forks))
            shutil.copy(pb / "job.keep", pb / "commission.yml")
            shutil.copy(pb / "job.keep", pb / "decommission.yml")
        if not parts & {"reads", "polling", "memory"}:
            return
        daemon.http.post(
            "/nodes",
            json={
                "name": "m1",
                "address": "127.0.0.1",
                "host_group": "master",
                "vars": local_vars(),
            },
        ).raise_for_status()
        if "reads" in parts:
            done("reads", bench_reads(daemon))
        if "polling" in parts:
            done("polling", bench_polling(daemon, args.poll_seconds))
        if args.big_mb and "memory" in parts:
            done("memory", bench_memory(daemon, args.big_mb))
    finally:
        daemon.stop()
        print(report(results, command, started, host))
        shutil.rmtree(work, ignore_errors=True)


def bench_overhead_runs(work: Path, daemon: Daemon, runs: int, forks: int = 5) -> dict[str, float]:
    """Each run: plain ansible-playbook, ansible-runner alone, then the same through clusterm,
    back to back, so that the three share the machine's state; the medians of each."""
    # Here, not at the top: the polling clients are spawned processes that import this module,
    # and twenty imports of the settings would only slow the benchmark down.
    from app.ansible.env import ansible_env
    from app.config import load_settings

    hosts = [f"h{i:02d}" for i in range(20)]
    inv = work / "inventory.yml"
    env = {**os.environ, "PATH": f"{Path(PY).parent}:{os.environ['PATH']}"}
    plain: list[float] = []
    bare: list[float] = []
    through: list[float] = []
    seen: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        with open(work / "plain.out", "wb") as out:
            subprocess.run(  # noqa: S603 - the venv's ansible-playbook
                [
                    str(Path(PY).parent / "ansible-playbook"),
                    "-i",
                    str(inv),
                    str(work / "pb" / "overhead.yml"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                check=True,
                # In a session of its own, as ansible-runner starts it (pexpect's pty): with
                # the kernel's autogroup scheduling each session gets its own share of a busy
                # machine's CPU, and a plain run in this one would get less than runner's.
                start_new_session=True,
            )
        plain.append(time.perf_counter() - start)
        # ansible-runner alone (clusterm's wrapper, no daemon): what part of the overhead is
        # runner's own (its per-event files, the pty) rather than clusterm's.
        shutil.rmtree(work / "bare", ignore_errors=True)
        start = time.perf_counter()
        spec = RunSpec(
            private_data_dir=work / "bare",
            playbook=work / "pb" / "overhead.yml",
            inventory=inv,
            extra_vars={},
            env=ansible_env(load_settings(data_dir=work / "bare-data", ssh_host_key_policy="off")),
            timeout_s=600,
        )
        result = run_playbook(
            spec,
            on_output=lambda text: None,
            should_cancel=lambda: False,
        )
        assert result.status == "successful", result
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        job, seconds = daemon.recorded_job(hosts, {})
        assert job["status"] == "successful", job
        through.append(seconds)
        seen.append(time.perf_counter() - start)
        daemon.decommission(hosts)
    return {
        "plain_s": statistics.median(plain),
        "runner_s": statistics.median(bare),
        "clusterm_s": statistics.median(through),
        # The same ratios round by round (the three runs of a round back to back), then their
        # median: on a machine whose speed drifts from round to round, steadier than the ratio
        # of the medians, which the targets are judged on.
        "vs_runner_paired": statistics.median(c / r for c, r in zip(through, bare, strict=True)),
        "vs_plain_paired": statistics.median(c / p for c, p in zip(through, plain, strict=True)),
        "runner_vs_plain_paired": statistics.median(
            r / p for r, p in zip(bare, plain, strict=True)
        ),
        "client_s": statistics.median(seen),
        "runs": runs,
        "forks": forks,
    }


if __name__ == "__main__":
    main()
