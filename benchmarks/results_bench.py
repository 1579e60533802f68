"""Per-task results benchmark: run with `.venv/bin/python benchmarks/results_bench.py`.

Starts two real `clusterm serve` daemons on loopback (local connection, each its own data dir
and SQLite database): one stores every task's result (`job_task_results` on, the default), the
other only the failures (`CLUSTERM_JOB_TASK_RESULTS=false`). Both run the same 200-host x
50-task commission, alternately, `--runs` times each, in the same run; then `GET /jobs/{id}/hosts`
of the last stored job (200 hosts, 10,000 task rows) is timed with curl. Writes the figures to
docs/benchmarks.md under "## Per-task results", with the targets: on/off <= 1.05x, p50 <= 20 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from jobs_bench import Daemon, curl_ms, local_vars  # noqa: E402  (the same daemon and client)

DOC = REPO / "docs" / "benchmarks.md"
HOSTS, TASKS = 200, 50
PY = sys.executable


def write_playbooks(pb: Path) -> None:
    tasks = [
        {
            "name": f"task {t}",
            "ansible.builtin.debug": {"msg": f"task {t} {{{{ inventory_hostname }}}}"},
        }
        for t in range(TASKS)
    ]
    play = [{"name": "bench", "hosts": "targets", "gather_facts": False, "tasks": tasks}]
    (pb / "commission.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    noop = [{"name": "noop", "hosts": "targets", "gather_facts": False, "tasks": []}]
    (pb / "decommission.yml").write_text(yaml.safe_dump(noop, sort_keys=False))


def start(work: Path, name: str, pb: Path, **env: str) -> Daemon:
    (work / name).mkdir()
    saved = dict(os.environ)
    os.environ.update(
        {
            "CLUSTERM_COMMISSION_PLAYBOOK": "commission.yml",
            "CLUSTERM_DECOMMISSION_PLAYBOOK": "decommission.yml",
            **env,
        }
    )
    try:
        daemon = Daemon(work / name, pb)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    body = [
        {"name": f"h{i:03d}", "address": "127.0.0.1", "host_group": "master", "vars": local_vars()}
        for i in range(HOSTS)
    ]
    daemon.http.post("/nodes", json=body).raise_for_status()
    return daemon


def run_job(daemon: Daemon, hosts: list[str]) -> tuple[int, float]:
    job, seconds = daemon.job(hosts, {})
    assert job["status"] == "successful", job
    daemon.decommission(hosts)
    return int(job["id"]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="jobs per daemon")
    parser.add_argument("--reads", type=int, default=60, help="GET /jobs/{id}/hosts requests")
    parser.add_argument("--no-write", action="store_true", help="do not append to the docs")
    args = parser.parse_args()
    hosts = [f"h{i:03d}" for i in range(HOSTS)]
    with tempfile.TemporaryDirectory(prefix="clusterm-results-bench-") as tmp:
        work = Path(tmp)
        pb = work / "pb"
        pb.mkdir()
        write_playbooks(pb)
        on = start(work, "on", pb)
        off = start(work, "off", pb, CLUSTERM_JOB_TASK_RESULTS="false")
        try:
            run_job(on, hosts[:5])  # warm up both (forkserver, caches)
            run_job(off, hosts[:5])
            times: dict[str, list[float]] = {"on": [], "off": []}
            last_on = 0
            for i in range(args.runs):
                # Alternate, and swap who goes first, so drift on the machine hits both alike.
                order = [("on", on), ("off", off)] if i % 2 == 0 else [("off", off), ("on", on)]
                for name, daemon in order:
                    job_id, seconds = run_job(daemon, hosts)
                    times[name].append(seconds)
                    if name == "on":
                        last_on = job_id
                    print(f"run {i + 1} {name}: {seconds:.2f} s", flush=True)
            view = on.http.get(f"/jobs/{last_on}/hosts").json()
            rows = sum(h["ok"] + h["skipped"] + h["failed"] for h in view["hosts"])
            assert len(view["hosts"]) == HOSTS, len(view["hosts"])
            for _ in range(5):
                on.http.get(f"/jobs/{last_on}/hosts")
            reads = curl_ms(on, f"/jobs/{last_on}/hosts", args.reads)
            text_reads = curl_ms(on, f"/jobs/{last_on}/hosts?format=text", args.reads)
            host_reads = curl_ms(on, f"/jobs/{last_on}/hosts/h100", args.reads)
        finally:
            on.stop()
            off.stop()
    figures: dict[str, Any] = {
        "on_s": statistics.median(times["on"]),
        "off_s": statistics.median(times["off"]),
        "rows": rows,
        "hosts_p50": statistics.median(reads),
        "hosts_text_p50": statistics.median(text_reads),
        "host_p50": statistics.median(host_reads),
    }
    figures["ratio"] = figures["on_s"] / figures["off_s"]
    report = render(figures, times, args)
    print(report)
    if not args.no_write:
        with DOC.open("a") as doc:
            doc.write("\n" + report)


def render(f: dict[str, Any], times: dict[str, list[float]], args: argparse.Namespace) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    )
    runs = (
        ", ".join(f"{t:.1f}" for t in times["on"])
        + " / "
        + ", ".join(f"{t:.1f}" for t in times["off"])
    )
    return (
        "## Per-task results\n\n"
        f"{now}; {machine}; Python {platform.python_version()}; SQLite.\n"
        f"Command: `.venv/bin/python benchmarks/results_bench.py --runs {args.runs}`\n\n"
        "| what | figure | target |\n|---|---|---|\n"
        f"| {HOSTS} hosts x {TASKS} tasks, task results stored (median of {args.runs}) | "
        f"{f['on_s']:.2f} s | |\n"
        f"| the same, `job_task_results` off | {f['off_s']:.2f} s | |\n"
        f"| ratio on / off | {f['ratio']:.3f}x | <= 1.05x |\n"
        f"| `GET /jobs/{{id}}/hosts` ({HOSTS} hosts, {f['rows']} task results), p50 | "
        f"{f['hosts_p50']:.1f} ms | <= 20 ms |\n"
        f"| the same, `?format=text`, p50 | {f['hosts_text_p50']:.1f} ms | |\n"
        f"| `GET /jobs/{{id}}/hosts/h100` ({TASKS} tasks), p50 | {f['host_p50']:.1f} ms | |\n\n"
        f"Each run (s), on / off: {runs}.\n"
    )


if __name__ == "__main__":
    main()
