"""Replicas benchmark: run with `.venv/bin/python benchmarks/ha_bench.py`.

Starts three real `clusterm serve` replicas on a fresh schema of a PostgreSQL database
(CLUSTERM_TEST_DATABASE_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/test) with the
default lease (4 s), and writes the figures to docs/benchmarks.md under "## Replicas (HA)":

1. failover, `--rounds` times (10): a job runs on the leader; the leader is killed with SIGKILL;
   the survivors' /readyz are polled every 50 ms until one says it leads (the time to a new
   leader); then the new leader is polled on the job routes until it serves the killed job as
   interrupted and accepts the next job (which runs during the next round); the killed replica
   is started again, as a follower;
2. reading a finished job's log (a few thousand lines, `GET /info/job/last?since=0`), `--reads`
   times (200) through a follower and through the leader, alternately, in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "tests" / "jobs" / "playbooks"
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Replicas (HA)"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POLL_S = 0.05
LOG_BYTES = 300_000  # emit.py: 3,000 lines of 108 bytes
TARGET_MAX_S, TARGET_MEDIAN_S, TARGET_READ_RATIO = 10.0, 5.0, 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """The first truthy value of `check`, polled every 50 ms; SystemExit when it never comes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"ha_bench: {what}: not within {timeout_s:g} s")
        time.sleep(POLL_S)


class Replica:
    def __init__(self, work: Path, name: str, env: dict[str, str]) -> None:
        self.id = f"bench-{name}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = work / name
        self.log = work / f"{name}.log"
        self.env = {
            **env,
            "CLUSTERM_REPLICA_ID": self.id,
            "CLUSTERM_ADVERTISE_URL": self.url,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.http: httpx.Client | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-c", "from app.cli import main; main()", "serve"]
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter
                [*cmd, "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=self.env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        until(lambda: self.role() is not None, 60, f"{self.id} to be ready (see {self.log})")
        token = Path(self.env["CLUSTERM_ADMIN_TOKEN_FILE"]).read_text().strip()
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    @property
    def client(self) -> httpx.Client:
        assert self.http is not None
        return self.http

    def role(self) -> str | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise SystemExit(f"ha_bench: {self.id} exited; see {self.log}")
        try:
            r = httpx.get(f"{self.url}/readyz", timeout=1)
        except httpx.TransportError:
            return None
        return str(r.json()["role"]) if r.status_code == 200 else None

    def kill(self) -> None:
        assert self.proc is not None
        if self.http is not None:
            self.http.close()
            self.http = None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def leader_of(replicas: list[Replica]) -> Replica | None:
    leaders = [r for r in replicas if r.role() == "leader"]
    return leaders[0] if len(leaders) == 1 else None


def node(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "address": "127.0.0.1",
        "host_group": "master",
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
    }


def submit(client: httpx.Client, name: str, extra_vars: dict[str, Any]) -> httpx.Response:
    return client.post("/commission/nodes", json={"nodes": [name], "extra_vars": extra_vars})


def answers(replica: Replica, path: str) -> bool:
    return replica.client.get(path).status_code == 200


def job_status(client: httpx.Client, job_id: int) -> str:
    return str(client.get(f"/jobs/{job_id}").json()["status"])


# --- 2. log reads ------------------------------------------------------------------------------


def bench_reads(leader: Replica, follower: Replica, n: int) -> dict[str, Any]:
    r = submit(leader.client, "reads", {"emit_bytes": LOG_BYTES})
    r.raise_for_status()
    job_id = r.json()["id"]
    until(
        lambda: job_status(leader.client, job_id) not in ("queued", "running"), 300, "the log job"
    )
    body = follower.client.get("/info/job/last", params={"since": 0}).json()
    if body["id"] != job_id or body["status"] != "successful":
        raise SystemExit(f"ha_bench: the log job did not succeed: {body['status']}")
    times: dict[str, list[float]] = {"leader": [], "follower": []}
    for replica in (leader, follower):  # warm: connections, caches
        for _ in range(5):
            replica.client.get("/info/job/last", params={"since": 0}).raise_for_status()
    pair = [("leader", leader), ("follower", follower)]
    for i in range(n):
        # Each goes first half the time: neither pays for the other's connection or cache.
        for name, replica in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            response = replica.client.get("/info/job/last", params={"since": 0})
            times[name].append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
    return {
        "lines": len(body["logs"]),
        "kb": sum(len(line.encode()) + 1 for line in body["logs"]) / 1024,
        **times,
    }


# --- 1. failover -------------------------------------------------------------------------------


def bench_failover(replicas: list[Replica], rounds: int) -> list[dict[str, float]]:
    leader = until(lambda: leader_of(replicas), 30, "a first leader")
    names = [f"f{i:02d}" for i in range(rounds + 1)]
    leader.client.post("/nodes", json=[node(n) for n in names]).raise_for_status()
    r = submit(leader.client, names[0], {"sleep_s": 600})
    r.raise_for_status()
    job_id = r.json()["id"]
    out = []
    for i in range(rounds):

        def running(client: httpx.Client = leader.client, job: int = job_id) -> bool:
            return job_status(client, job) == "running"

        until(running, 60, f"job {job_id} to run")
        survivors = [r for r in replicas if r is not leader]
        killed_at = time.monotonic()
        leader.kill()
        new: Replica = until(partial(leader_of, survivors), 30, "a new leader")
        led_at = time.monotonic()
        # The first answer from the new leader on a job route.
        until(partial(answers, new, "/info/job/last"), 30, "a 200 from the new leader")
        route_at = time.monotonic()

        def served(new: Replica = new, old_job: int = job_id) -> bool:
            response = new.client.get(f"/jobs/{old_job}")
            return response.status_code == 200 and response.json()["status"] == "interrupted"

        until(served, 30, f"job {job_id} served as interrupted by the new leader")
        served_at = time.monotonic()

        job_id = accept(new, names[i + 1])
        accepted_at = time.monotonic()
        out.append(
            {
                "leader_s": led_at - killed_at,
                "route_s": route_at - killed_at,
                "served_s": served_at - killed_at,
                "accepted_s": accepted_at - killed_at,
            }
        )
        print(
            f"round {i + 1}: new leader {new.id} after {out[-1]['leader_s']:.2f} s, its first "
            f"200 on a job route after {out[-1]['route_s']:.2f} s, killed job "
            f"served interrupted after {out[-1]['served_s']:.2f} s, next job accepted after "
            f"{out[-1]['accepted_s']:.2f} s",
            flush=True,
        )
        leader.start()  # back, as a follower
        if leader.role() != "follower":
            raise SystemExit(f"ha_bench: {leader.id} came back as {leader.role()}")
        leader = new
    leader.client.post("/info/job/active/cancel")
    return out


def accept(replica: Replica, name: str, timeout_s: float = 30) -> int:
    """Submit the next job to `replica` until it is accepted; its id."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = submit(replica.client, name, {"sleep_s": 600})
        if response.status_code == 202:
            return int(response.json()["id"])
        if time.monotonic() > deadline:
            raise SystemExit(
                f"ha_bench: {replica.id} did not accept the next job within {timeout_s:g} s: "
                f"{response.status_code} {response.text}"
            )
        time.sleep(POLL_S)


# --- report ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine(load: tuple[float, float]) -> str:
    uname = f"{platform.system()} {platform.release()} {platform.machine()}"  # uname -srm
    return (
        f"{uname}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {load[0]:.1f} -> {load[1]:.1f} (the machine is shared with other runs)"
    )


def section(
    rounds: list[dict[str, float]], reads: dict[str, Any], command: str, load: tuple[float, float]
) -> str:
    lead = [r["leader_s"] for r in rounds]
    route = [r["route_s"] for r in rounds]
    served = [r["served_s"] for r in rounds]
    accepted = [r["accepted_s"] for r in rounds]
    med, worst = statistics.median(lead), max(lead)
    rows = [
        f"| time to a new leader after kill -9 (median of {len(lead)}) | {med:.2f} s | "
        f"<= {TARGET_MEDIAN_S:g} s | {'yes' if med <= TARGET_MEDIAN_S else 'NO'} |",
        f"| time to a new leader after kill -9 (max of {len(lead)}) | {worst:.2f} s | "
        f"<= {TARGET_MAX_S:g} s | {'yes' if worst <= TARGET_MAX_S else 'NO'} |",
        f"| time to the new leader's first 200 on `GET /info/job/last` (median; max) | "
        f"{statistics.median(route):.2f} s; {max(route):.2f} s | - | - |",
        f"| time to the killed job served `interrupted` by the new leader (median; max) | "
        f"{statistics.median(served):.2f} s; {max(served):.2f} s | - | - |",
        f"| time to the next job accepted (202) (median; max) | "
        f"{statistics.median(accepted):.2f} s; {max(accepted):.2f} s | - | - |",
    ]
    p50 = {k: statistics.median(reads[k]) for k in ("leader", "follower")}
    ratio = p50["follower"] / p50["leader"]
    what = f"`GET /info/job/last?since=0`, {reads['lines']:,} lines / {reads['kb']:.0f} KB"
    for name in ("leader", "follower"):
        rows.append(
            f"| {what}, through the {name} (p50; p95; N={len(reads[name])}) | "
            f"{p50[name]:.2f} ms; {pct(reads[name], 0.95):.2f} ms | - | - |"
        )
    rows.append(
        f"| the same read, follower over leader (p50) | {ratio:.2f}x | "
        f"<= {TARGET_READ_RATIO:g}x | {'yes' if ratio <= TARGET_READ_RATIO else 'NO'} |"
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            HEADING,
            "",
            f"- Date: {now}",
            f"- Machine: {machine(load)}",
            f"- Command: `{command}`",
            "- Setup: three `clusterm serve` replicas on one PostgreSQL (a fresh schema, on the "
            "same machine), the default lease (4 s: renewed every 1 s, taken by a follower that "
            "looks every 1 s once it has run out); each round kills the leader with SIGKILL while "
            "it runs a job, polls the survivors' `/readyz` every 50 ms, then polls the new leader "
            "until it serves the killed job as `interrupted` and accepts the next job, and starts "
            "the killed replica again as a follower. The log reads alternate between the leader "
            "and a follower, one keep-alive httpx client each, in the same run.",
            "",
            "| Measure | Figure | Target | Met |",
            "|---|---|---|---|",
            *rows,
            "",
            "A kill -9 leaves the lease to run out: a new leader comes between `ttl - 1 s` (the "
            "leader renewed just before it died, then the lease runs its 4 s) and `ttl + 1 s` "
            "(a follower looks once a second). A graceful stop hands the lead over at once.",
            "",
        ]
    )


def write_doc(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = doc.find(HEADING)
    if start >= 0:  # this benchmark's own section, replaced; the others are left as they are
        end = doc.find("\n## ", start + 1)
        doc = doc[:start] + text + (doc[end + 1 :] if end >= 0 else "")
    else:
        doc = doc.rstrip() + "\n\n" + text
    DOC.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="failovers (default 10)")
    parser.add_argument("--reads", type=int, default=200, help="reads per replica (200)")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch the doc")
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/ha_bench.py", *sys.argv[1:]])
    url = os.environ.get("CLUSTERM_TEST_DATABASE_URL") or PG_URL
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="ha-bench-"))
    with fresh_schema(url) as db_url:
        env = {
            **os.environ,
            "CLUSTERM_DATABASE_URL": db_url,
            "CLUSTERM_ADMIN_TOKEN_FILE": str(work / "admin.token"),
            "CLUSTERM_PLAYBOOK_DIR": str(PLAYBOOKS),
            "CLUSTERM_COMMISSION_PLAYBOOK": "job.yml",
            "CLUSTERM_LOG_LEVEL": "warning",
            # The drift watch would run its own playbook now and then: not what is measured.
            "CLUSTERM_DRIFT_INTERVAL_S": "0",
        }
        env.pop("CLUSTERM_LEASE_TTL_S", None)  # the default lease is what is measured
        replicas = [Replica(work, name, env) for name in "abc"]
        try:
            replicas[0].start()  # alone first: it migrates and writes the token
            for replica in replicas[1:]:
                replica.start()
            leader = until(lambda: leader_of(replicas), 30, "a leader")
            leader.client.post("/nodes", json=[node("reads")]).raise_for_status()
            follower = next(r for r in replicas if r is not leader)
            reads = bench_reads(leader, follower, args.reads)
            rounds = bench_failover(replicas, args.rounds)
        finally:
            for replica in replicas:
                replica.stop()
    shutil.rmtree(work)  # kept when the run failed: the replicas' logs say why
    text = section(rounds, reads, command, (load_before, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        write_doc(text)


if __name__ == "__main__":
    main()
