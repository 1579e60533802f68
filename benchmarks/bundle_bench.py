"""Support bundle benchmark: run with `.venv/bin/python benchmarks/bundle_bench.py`.

Starts a real `clusterm serve` on loopback (its own data dir and SQLite database, local
connection), runs `--jobs` jobs whose logs are about `--log-mb` MB each (under the default
`job_log_cap_bytes`, 8 MiB, so each log stays whole), then measures the daemon's RSS at rest and
`GET /support/bundle` streamed to a file: wall time, size, and the daemon's peak RSS during the
download (VmHWM reset through /proc/PID/clear_refs just before, and VmRSS polled every 20 ms: the
larger of the two). Opens the bundle and counts the jobs whose logs it holds: the default
`support_bundle_max_bytes` (50 MB before compression) holds fewer than 20 logs of 5 MB. Writes the
figures to docs/benchmarks.md under "## Support bundle", with the target: peak <= rest + 50 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from jobs_bench import Daemon, local_vars  # noqa: E402  (the same daemon and client)

DOC = REPO / "docs" / "benchmarks.md"
LINE = 151  # bytes a printed line takes in the log, about: see write_playbooks
TARGET_MB = 50


def write_playbooks(pb: Path, log_mb: float) -> None:
    # One debug task printing a list of sha512 digests: Ansible shows each on its own line
    # (`        "<128 hex digits>",`), so the log grows by about LINE bytes per item; digests,
    # not one repeated string, so that gzip does about as well as on a real log, not 100x.
    items = int(log_mb * 1e6 / LINE)
    msg = f"{{{{ range({items}) | map('string') | map('hash', 'sha512') | list }}}}"
    task = {"name": "print", "ansible.builtin.debug": {"msg": msg}}
    play = [{"name": "bench", "hosts": "targets", "gather_facts": False, "tasks": [task]}]
    (pb / "commission.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    noop = [{"name": "noop", "hosts": "targets", "gather_facts": False, "tasks": []}]
    (pb / "decommission.yml").write_text(yaml.safe_dump(noop, sort_keys=False))


def start(work: Path, pb: Path, jobs: int) -> Daemon:
    saved = dict(os.environ)
    os.environ.update(
        {
            "CLUSTERM_COMMISSION_PLAYBOOK": "commission.yml",
            "CLUSTERM_DECOMMISSION_PLAYBOOK": "decommission.yml",
        }
    )
    try:
        daemon = Daemon(work, pb)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    body = [
        {"name": f"b{i:02d}", "address": "127.0.0.1", "host_group": "master", "vars": local_vars()}
        for i in range(jobs)
    ]
    daemon.http.post("/nodes", json=body).raise_for_status()
    return daemon


class Peak(threading.Thread):
    """Polls the daemon's VmRSS every 20 ms until stopped; keeps the largest."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon=True)
        self.target = daemon
        self.max_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.max_kb = max(self.max_kb, self.target.rss_kb())
            time.sleep(0.02)


def log_bytes(daemon: Daemon, job_id: int) -> int:
    response = daemon.http.get(f"/jobs/{job_id}/log", params={"format": "text"})
    if response.status_code != 200:
        return -1
    return len(response.content)


def bundle(daemon: Daemon, out: Path) -> dict[str, Any]:
    rest_kb = daemon.rss_kb()
    Path(f"/proc/{daemon.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    peak = Peak(daemon)
    peak.start()
    start = time.perf_counter()
    with daemon.http.stream("GET", "/support/bundle") as response, out.open("wb") as f:
        response.raise_for_status()
        for chunk in response.iter_bytes(1 << 16):
            f.write(chunk)
    seconds = time.perf_counter() - start
    peak.done.set()
    peak.join()
    hwm_kb = daemon.rss_kb("VmHWM")
    return {
        "rest_mb": rest_kb / 1024,
        "hwm_mb": hwm_kb / 1024,
        "poll_mb": peak.max_kb / 1024,
        "peak_mb": max(hwm_kb, peak.max_kb) / 1024,
        "seconds": seconds,
        "size_mb": out.stat().st_size / 1e6,
    }


def contents(path: Path) -> dict[str, Any]:
    with tarfile.open(path, "r:gz") as tar:
        members = tar.getmembers()
        # Every member sits under one folder named after the bundle.
        names = {m.name.split("/", 1)[-1]: m for m in members}
        readme = tar.extractfile(names["README.txt"])
        text = readme.read().decode() if readme else ""
    logs = [m for n, m in names.items() if n.startswith("jobs/") and n.endswith("/log.txt")]
    rows = [m for n, m in names.items() if n.startswith("jobs/") and n.endswith("/job.json")]
    # README.txt lists what was cut or left out under its own heading, up to a blank line.
    lines = text.splitlines()
    heads = [i for i, ln in enumerate(lines) if ln.startswith("Cut or left out")]
    left = []
    for ln in lines[heads[0] + 1 :] if heads else []:
        if not ln.strip():
            break
        left.append(ln.strip().removeprefix("- "))
    return {
        "logs": len(logs),
        "rows": len(rows),
        "raw_mb": sum(m.size for m in members) / 1e6,
        "log_sizes_mb": [round(m.size / 1e6, 2) for m in logs],
        "left": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20, help="jobs to run before the bundle")
    parser.add_argument("--log-mb", type=float, default=5.0, help="each job's log, MB")
    parser.add_argument("--no-write", action="store_true", help="do not append to the docs")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clusterm-bundle-bench-") as tmp:
        work = Path(tmp)
        pb = work / "pb"
        pb.mkdir()
        write_playbooks(pb, args.log_mb)
        daemon = start(work, pb, args.jobs)
        try:
            sizes = []
            for i in range(args.jobs):
                # One node per job and no decommission: a decommission is a job too, and only
                # the newest `job_dirs_kept` (20) jobs keep their logs.
                job, seconds = daemon.job([f"b{i:02d}"], {})
                assert job["status"] == "successful", job
                sizes.append(log_bytes(daemon, int(job["id"])))
                print(f"job {i + 1}: {seconds:.1f} s, log {sizes[-1] / 1e6:.2f} MB", flush=True)
            time.sleep(2)  # let the log writer and the allocator settle: "at rest"
            figures = bundle(daemon, work / "bundle.tar.gz")
            figures.update(contents(work / "bundle.tar.gz"))
        finally:
            daemon.stop()
    figures["log_mb"] = sum(sizes) / len(sizes) / 1e6
    figures["total_s"] = time.perf_counter() - started
    report = render(figures, args)
    print(report)
    if not args.no_write:
        with DOC.open("a") as doc:
            doc.write("\n" + report)


def render(f: dict[str, Any], args: argparse.Namespace) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    u = os.uname()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = f"{u.sysname} {u.release} {u.machine}, {os.cpu_count()} cores, load average {load}"
    growth = f["peak_mb"] - f["rest_mb"]
    met = "met" if growth <= TARGET_MB else "MISSED"
    cmd = ".venv/bin/python benchmarks/bundle_bench.py"
    if args.jobs != 20 or args.log_mb != 5.0:
        cmd += f" --jobs {args.jobs} --log-mb {args.log_mb}"
    return (
        "## Support bundle\n\n"
        f"{now}; {machine}; Python {platform.python_version()}; SQLite.\n"
        f"Command: `{cmd}` (whole run {f['total_s']:.0f} s)\n\n"
        "| what | figure | target |\n|---|---|---|\n"
        "| jobs before the bundle, log each (mean, as `GET /jobs/{id}/log?format=text` sends "
        f"it) | {args.jobs} x {f['log_mb']:.2f} MB | |\n"
        f"| daemon RSS at rest (VmRSS) | {f['rest_mb']:.1f} MB | |\n"
        f"| `GET /support/bundle`, wall time | {f['seconds']:.2f} s | |\n"
        f"| bundle size (.tar.gz) / members before compression | {f['size_mb']:.2f} MB / "
        f"{f['raw_mb']:.2f} MB | |\n"
        f"| daemon peak RSS during the download (VmHWM {f['hwm_mb']:.1f}, polled "
        f"{f['poll_mb']:.1f}) | {f['peak_mb']:.1f} MB (+{growth:.1f} MB) | "
        f"<= rest + {TARGET_MB} MB: {met} |\n"
        f"| jobs with their log in the bundle / with their row | {f['logs']} / {f['rows']} | |\n\n"
        f"Logs in the bundle (MB, their colour codes taken out, hence smaller): "
        f"{', '.join(str(s) for s in f['log_sizes_mb'])}. "
        "`support_bundle_max_bytes` (default 50 MB before compression) bounds what fits: the "
        "newest jobs first, a log that does not fit whole keeps its newest lines, the rest is "
        "left out and README.txt says so"
        + (f" (here: {'; '.join(f['left'])})" if f["left"] else "")
        + ".\n"
    )


if __name__ == "__main__":
    main()
