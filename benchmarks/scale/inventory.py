"""Scaling benchmark part: the inventory at 100 / 1,000 / 5,000 nodes (quick: 10 / 100).

For each size, a fresh `clusterm serve` (its own data dir, SQLite, as shipped) over one
keep-alive client:

- `POST /nodes` of every node in one request (an array), against the floor: the same node rows
  and their timeline events written with bare SQL (the driver's executemany, one transaction)
  into an empty copy of the daemon's schema. The ratio is what validation, the ORM, the
  timeline's events and the HTTP round trip cost above the inserts themselves.
- `GET /info/nodes` p50, as JSON and as text (`?format=text`), against `GET /healthz` p50 on
  the same daemon in the same run. Reading every node grows with the nodes by nature. The
  daemon keeps each node's JSON between listings (app/nodes/listing.py), so the p50 is the
  steady state of clients polling an inventory; the first read after the POST, one sample,
  shows the cost when every node's JSON is built afresh.
- `GET /info/nodes?state=commissioned` p50 (no node is commissioned): an empty answer whose cost
  should not grow with the inventory.

Each row's note also gives the CPU the daemon process (all its threads) used per request, read
from /proc in 10 ms ticks: on a loaded machine the wall times grow with the load, that does not.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs_bench import REPO, Daemon

from .common import Row

AREA = "inventory"
HEALTHZ = "GET /healthz p50"
GET_TARGET_MS = 50.0  # GET /info/nodes p50 at 5,000 nodes
POST_TARGET_S = 3.0  # POST of 5,000 nodes in one request
TARGET_SIZE = 5_000


def node_bodies(count: int) -> list[dict[str, Any]]:
    """An inventory as an operator would import it: three masters, workers, labels, a var."""
    return [
        {
            "name": f"node-{i:05d}.dc1.example.com",
            "address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            "ssh_user": "ubuntu",
            "host_group": "master" if i < 3 else "worker",
            "labels": {"rack": f"r{i // 40:03d}", "zone": "a" if i % 2 else "b"},
            "vars": {"ansible_become": True},
        }
        for i in range(count)
    ]


def daemon_cpu_ms(pid: int) -> float:
    """CPU the daemon has used (user + system): on a loaded machine, what a request costs the
    daemon itself, which its wall time no longer shows."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def p50_ms(fn: Callable[[], Any], samples: int, pid: int) -> tuple[float, float]:
    """(p50 wall ms, the daemon's mean CPU ms a request)."""
    fn()  # warm: the first request pays for connections and caches
    times = []
    cpu_before = daemon_cpu_ms(pid)
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), (daemon_cpu_ms(pid) - cpu_before) / samples


def bare_sql_s(daemon_db: Path, work: Path, nodes: list[dict[str, Any]]) -> float:
    """Seconds to write the same node rows and one event each with the driver alone."""
    with sqlite3.connect(daemon_db) as source:
        ddl = [
            sql
            for (sql,) in source.execute(
                "SELECT sql FROM sqlite_master WHERE type IN ('table', 'index') "
                "AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
            )
        ]
    target = work / "bare.sqlite"
    db = sqlite3.connect(target, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        for sql in ddl:
            db.execute(sql)
        start = time.perf_counter()
        now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO node (name, address, ssh_port, ssh_user, host_group, labels, vars, "
            "state, created_at, updated_at) VALUES (?, ?, 22, ?, ?, ?, ?, 'registered', ?, ?)",
            [
                (
                    n["name"],
                    n["address"],
                    n["ssh_user"],
                    n["host_group"],
                    json.dumps(n["labels"]),
                    json.dumps(n["vars"]),
                    now,
                    now,
                )
                for n in nodes
            ],
        )
        ids = dict(db.execute("SELECT name, id FROM node"))
        db.executemany(
            "INSERT INTO timeline_event (occurred_at, node_id, node_name, action, reason, "
            "result, severity, to_state, details, actor, audit) "
            "VALUES (?, ?, ?, 'register', 'NodeRegistered', 'succeeded', 'info', 'registered', "
            "?, 'admin', 0)",
            [
                (
                    now,
                    ids[n["name"]],
                    n["name"],
                    json.dumps({**n, "ssh_port": 22, "vars": sorted(n["vars"])}),
                )
                for n in nodes
            ],
        )
        db.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        db.close()


def measure(size: int, samples: int) -> list[Row]:
    nodes = node_bodies(size)
    body = json.dumps(nodes).encode()
    with tempfile.TemporaryDirectory(prefix="scale-inventory-") as tmp:
        work = Path(tmp)
        daemon = Daemon(work, REPO / "ansible")
        try:
            http = daemon.http
            # Warm the route (imports on first use, the connection) with a body it refuses, which
            # stores nothing: the timed POST is then the batch's cost, not the first request's.
            if http.post("/nodes", json=[{"name": "warm-up"}]).status_code != 422:
                raise SystemExit("POST /nodes took a node without an address")
            pid = daemon.proc.pid
            cpu_before, start = daemon_cpu_ms(pid), time.perf_counter()
            response = http.post(
                "/nodes", content=body, headers={"Content-Type": "application/json"}
            )
            post_s = time.perf_counter() - start
            post_cpu = daemon_cpu_ms(pid) - cpu_before
            if response.status_code != 201 or len(response.json()) != size:
                raise SystemExit(f"POST /nodes of {size}: {response.status_code} {response.text}")
            bare_s = bare_sql_s(daemon.data_dir / "clusterm.db", work, nodes)

            def listing(params: dict[str, str]) -> Callable[[], Any]:
                return lambda: http.get("/info/nodes", params=params).raise_for_status()

            healthz, _ = p50_ms(lambda: http.get("/healthz").raise_for_status(), samples, pid)
            cpu_before, start = daemon_cpu_ms(pid), time.perf_counter()
            listing({})()
            first = (time.perf_counter() - start) * 1000, daemon_cpu_ms(pid) - cpu_before
            as_json = p50_ms(listing({}), samples, pid)
            as_text = p50_ms(listing({"format": "text"}), samples, pid)
            empty = p50_ms(listing({"state": "commissioned"}), samples, pid)
        finally:
            daemon.stop()

    at_target = size == TARGET_SIZE
    kb = len(body) / 1024
    get_rows = [
        Row(
            AREA,
            measure,
            size,
            wall,
            "ms",
            baseline=HEALTHZ,
            baseline_figure=healthz,
            target=f"<= {GET_TARGET_MS:.0f} ms" if targeted else "",
            met=wall <= GET_TARGET_MS if targeted else None,
            flat=flat,
            note=f"daemon CPU {cpu:,.1f} ms a request",
        )
        for measure, (wall, cpu), targeted, flat in (
            # The target is the JSON listing's p50.
            ("GET /info/nodes (JSON), p50", as_json, at_target, False),
            ("GET /info/nodes (JSON), first read after the POST", first, False, False),
            ("GET /info/nodes?format=text, p50", as_text, False, False),
            ("GET /info/nodes?state=commissioned (none match), p50", empty, False, True),
        )
    ]
    post_row = Row(
        AREA,
        "POST /nodes, all in one request",
        size,
        post_s,
        "s",
        baseline="same rows and events, bare SQL executemany",
        baseline_figure=bare_s,
        target=f"<= {POST_TARGET_S:.0f} s" if at_target else "",
        met=post_s <= POST_TARGET_S if at_target else None,
        note=f"{kb:,.0f} KB body, daemon CPU {post_cpu / 1000:,.2f} s",
    )
    return [post_row, *get_rows]


def run(quick: bool) -> list[Row]:
    sizes, samples = ((10, 100), 10) if quick else ((100, 1_000, TARGET_SIZE), 30)
    by_size = [measure(size, samples) for size in sizes]
    # One measure's rows together, smallest size first, as the report reads them.
    return [row for index in range(len(by_size[0])) for row in (rows[index] for rows in by_size)]
