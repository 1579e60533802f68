"""Verbosity fan-out benchmark: one change to 1,000 emulated kubelets that each answer
after 20 ms, through clusterm's real `POST /verbosity`, against a serial loop in the same run.

    .venv/bin/python benchmarks/verbosity_bench.py            # prints, updates docs/benchmarks.md
    .venv/bin/python benchmarks/verbosity_bench.py --nodes 200 --no-write   # a quick look

The emulated kubelets (tests/verbosity/emulator.py: real HTTPS, bearer check, the contract in
docs/contracts.md#flags-endpoint byte for byte) run in a child process, so they do not share
clusterm's interpreter lock. clusterm runs in this process (the FastAPI app under Starlette's
TestClient, a migrated SQLite file), with TLS checked against a CA made for the run. The baseline
is the same request to a clusterm whose `verbosity_concurrency` is 1: the same code, one target at
a time.

Target: the fan-out to 1,000 endpoints completes in <= 2 s (serially it takes >= 20 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOC = REPO / "docs" / "benchmarks.md"
TOKEN = "bench-token"  # noqa: S105  (the emulators' token, made up for the run)
TARGET_S = 2.0


def serve(count: int, delay: float, pem: str) -> None:
    """Child process: start the emulators, print their ports, serve until stdin closes."""
    from tests.verbosity.emulator import Emulator

    emulator = Emulator(ca=None)
    ports = [emulator.add(f"n{i:04d}", token=TOKEN, delay_s=delay).port for i in range(count)]
    if pem:
        emulator.start_tls(pem)
    else:
        emulator.start()  # plain HTTP
    print(json.dumps(ports), flush=True)
    sys.stdin.read()
    emulator.stop()


def run_bench(nodes: int, delay: float, repeats: int, with_serial: bool) -> dict[str, Any]:
    import sqlalchemy as sa
    import trustme
    from fastapi.testclient import TestClient

    from app.config import load_settings
    from app.main import create_app
    from app.nodes.models import Node
    from app.runtime import runtime_of

    work = Path(tempfile.mkdtemp(prefix="verbosity-bench-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(work / "srv.pem"))
    (work / "token").write_text(TOKEN)
    child = subprocess.Popen(  # noqa: S603  (this script, with its own arguments)
        [sys.executable, __file__, "--serve", str(nodes), "--delay", str(delay), "--pem",
         str(work / "srv.pem")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stdin is not None
    ports = json.loads(child.stdout.readline())
    kubelet = {"ca_file": work / "ca.pem", "token_file": work / "token"}

    def app_with(concurrency: int, data: str) -> Any:
        settings = load_settings(
            data_dir=work / data,
            verbosity_components={"kubelet": kubelet},
            verbosity_concurrency=concurrency,
            verbosity_timeout_s=30.0,
        )
        return create_app(settings), settings

    def fan_out(client: TestClient, level: int) -> float:
        body = {"component": "kubelet", "nodes": "all", "level": level, "ttl": "0"}
        start = time.perf_counter()
        r = client.post("/verbosity", json=body)
        elapsed = time.perf_counter() - start
        assert r.status_code == 200, r.text[:500]
        assert r.json()["succeeded"] == nodes
        return elapsed

    def register(client: TestClient) -> None:
        body = [
            {"name": f"n{i:04d}", "address": "127.0.0.1",
             "vars": {"clusterm_verbosity": {"kubelet": {"port": port}}}}
            for i, port in enumerate(ports)
        ]  # fmt: skip
        assert client.post("/nodes", json=body).status_code == 201
        # Components are reached only on nodes that may run them: mark them commissioned, as
        # the commission job would (it needs real hosts).
        with runtime_of(client.app).db.write() as session:
            session.execute(sa.update(Node).values(state="commissioned"))

    results: dict[str, Any] = {"nodes": nodes, "delay_ms": delay * 1000}
    load_before = os.getloadavg()[0]
    try:
        app, settings = app_with(100, "concurrent")
        with TestClient(app) as client:
            client.headers["Authorization"] = "Bearer " + settings.admin_token_file.read_text()
            register(client)
            fan_out(client, 2)  # warm-up: imports, first TLS context
            times = [fan_out(client, 3 + i) for i in range(repeats)]
        results["concurrency"] = settings.verbosity_concurrency
        results["fanout_s"] = times
        if with_serial:
            app, settings = app_with(1, "serial")
            with TestClient(app) as client:
                client.headers["Authorization"] = "Bearer " + settings.admin_token_file.read_text()
                register(client)
                results["serial_s"] = fan_out(client, 4)
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    results["load"] = (load_before, os.getloadavg()[0])
    return results


def write_doc(r: dict[str, Any], command: str) -> str:
    median = statistics.median(r["fanout_s"])
    best = min(r["fanout_s"])
    serial = r.get("serial_s")
    met = "yes" if median <= TARGET_S else "NO"
    ratio = f"{serial / median:.1f}x faster" if serial else "-"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, "
        f"Linux {platform.release()}; load average during the run {r['load'][0]:.1f} -> "
        f"{r['load'][1]:.1f} (the machine is shared with other test runs)"
    )
    setup = (
        f"{r['nodes']:,} emulated kubelets (tests/verbosity/emulator.py: HTTPS with a CA made for "
        f"the run, bearer token, docs/contracts.md), each answering after {r['delay_ms']:.0f} ms, "
        "in a child process; clusterm in the benchmark's process (migrated SQLite file, the real "
        "`POST /verbosity` through Starlette's TestClient, certificate checks on, one timeline "
        "event per node)"
    )
    row = (
        f"| `POST /verbosity` to {r['nodes']:,} nodes, concurrency {r['concurrency']}, median of "
        f"{len(r['fanout_s'])} | {median:.2f} s (best {best:.2f} s) | <= {TARGET_S:.0f} s | {met} "
        f"| {serial:.2f} s | {ratio} |"
    )
    section = "\n".join(
        [
            "## Verbosity",
            "",
            f"- Date: {now}",
            f"- Machine: {machine}",
            f"- Command: `{command}`",
            f"- Setup: {setup}",
            "- Baseline: the same request to a clusterm with `verbosity_concurrency=1` (the same "
            "code, one target at a time), in the same run. Ratio: the baseline's time over the "
            "fan-out's.",
            "",
            "| Measure | Figure | Target | Met | Baseline (serial) | Ratio |",
            "|---|---|---|---|---|---|",
            row,
            "",
            f"Each run opens {r['nodes']:,} TLS connections (each node is another host:port) and "
            "records every result and its timeline event in one transaction.",
            "",
            "Why the target is missed here: the run is CPU-bound, not wait-bound. Both ends of "
            "every TLS handshake (about 1 ms of CPU each in the profile) and httpx's per-"
            "connection work run in Python on the same 2 shared cores, the 1,000 emulated "
            "kubelets in one child process; real kubelets do their half on their own machines. "
            "httpcore's pool scanned every idle keep-alive connection on each request, which "
            "made the fan-out quadratic (35 s); the forwarder now keeps no idle connections "
            "(a fan-out meets each host:port once).",
            "",
        ]
    )
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = text.find("## Verbosity")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    DOC.write_text(text)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-serial", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pem", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.delay, args.pem)
        return
    r = run_bench(args.nodes, args.delay, args.repeats, not args.no_serial)
    print(json.dumps(r, indent=2))
    if not args.no_write and r.get("serial_s"):
        print(write_doc(r, "python benchmarks/verbosity_bench.py"))


if __name__ == "__main__":
    main()
