"""Playbooks benchmark: run with `.venv/bin/python benchmarks/playbooks_bench.py`.

A 5-node update (one master, four workers) in the local-connection sandbox (ansible/demo's
simulated kubeadm/kubectl/apt-get/systemctl), with a disruptive change pending on every node (its
containerd configuration removed, so containerd is reconfigured and restarted and the node is
cordoned and drained first): the rolling update (the defaults: masters one at a time, workers in
batches of 20 %) against all at once (`clusterm_update_batch: 100`), wall time, median of
`--runs`, the two alternating. Then a second update of each kind with nothing pending: the changed
count of every host (0 expected: no cordon, no change). Writes the figures to docs/benchmarks.md
under "## Playbooks: rolling update".
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ansible_runner

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from jobs_bench import machine, write_doc  # noqa: E402  (the benchmarks' shared helpers)

from app.ansible import inventory  # noqa: E402
from app.ansible.runner import write_extra_vars  # noqa: E402
from tests.playbooks.conftest import PLAYBOOK_DIR, PlaybookRun  # noqa: E402
from tests.playbooks.local_sandbox import FAST, Sandbox  # noqa: E402

HEADING = "## Playbooks: rolling update"
MODES = {
    "rolling (defaults)": {},
    "all at once (`clusterm_update_batch: 100`)": {"clusterm_update_batch": 100},
}
SANDBOX_VARS: dict[str, Any] = FAST | {"clusterm_cni_manifest_url": ""}


def run(sandbox: Sandbox, playbook: str, hosts: list[inventory.Host], **extra: Any) -> PlaybookRun:
    """The playbook as the sandbox runs it (tests/playbooks/local_sandbox.py), without its
    5-minute cap: a rolling update of five nodes on a loaded machine can take longer."""
    masters = [h for h in hosts if h.host_group == inventory.MASTER]
    private = Path(tempfile.mkdtemp(prefix="run-", dir=sandbox.base))
    write_extra_vars(private, {"clusterm_job_id": 1} | SANDBOX_VARS | extra)
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(PLAYBOOK_DIR / playbook),
        inventory=str(sandbox.inventory(hosts, masters)),
        envvars={
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "ANSIBLE_NOCOLOR": "1",
        },
        quiet=True,
        timeout=3600,
        settings={"pexpect_timeout": 0.2},
    )
    with runner.stdout as output:
        result = PlaybookRun(
            status=runner.status, rc=runner.rc, events=list(runner.events), stdout=output.read()
        )
    if runner.status != "successful" or result.outcome() != {h.name: "ok" for h in hosts}:
        sys.exit(f"{playbook}: {runner.status}\n{result.stdout[-3000:]}")
    return result


def cordons(sandbox: Sandbox) -> int:
    return sum(e["reason"] == "NodeNotSchedulable" for e in sandbox.cluster_state()["events"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="updates of each kind (median)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update the doc")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python benchmarks/playbooks_bench.py", *sys.argv[1:]])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    at_start = machine()
    sandbox = Sandbox(Path(tempfile.mkdtemp(prefix="playbooks-bench-")))
    hosts = [sandbox.host("node1", inventory.MASTER)] + [
        sandbox.host(f"node{i}") for i in range(2, 6)
    ]

    t0 = time.monotonic()
    run(sandbox, "commission.yml", hosts)
    commission_s = time.monotonic() - t0
    print(f"commission: {commission_s:.1f} s", flush=True)

    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for index in range(args.runs):
        # Alternate who goes first, so the machine's drift hits both alike.
        order = list(MODES) if index % 2 == 0 else list(reversed(MODES))
        for mode in order:
            for host in hosts:
                (sandbox.root(host.name) / "etc/containerd/config.toml").unlink()
            before = cordons(sandbox)
            t0 = time.monotonic()
            run(sandbox, "update.yml", hosts, **MODES[mode])
            times[mode].append(time.monotonic() - t0)
            if cordons(sandbox) - before != len(hosts):
                sys.exit(f"{mode}: expected every node cordoned once")
            print(f"{mode}: {times[mode][-1]:.1f} s", flush=True)

    second: dict[str, dict[str, int]] = {}
    for mode, extra in MODES.items():
        before = cordons(sandbox)
        result = run(sandbox, "update.yml", hosts, **extra)
        second[mode] = {h: s["changed"] for h, s in sorted(result.stats.items())}
        second[mode]["(cordons)"] = cordons(sandbox) - before
        print(f"second run, {mode}: {second[mode]}", flush=True)

    section = report(times, second, commission_s, command, f"{started}; {at_start}", args.runs)
    print(section)
    if not args.no_write:
        write_doc(section, HEADING)


def report(
    times: dict[str, list[float]],
    second: dict[str, dict[str, int]],
    commission_s: float,
    command: str,
    started: str,
    runs: int,
) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rolling, at_once = (statistics.median(times[m]) for m in MODES)
    lines = [
        HEADING,
        "",
        f"{started}; load average {load} at the end.",
        f"Command: `{command}`",
        "",
        "5 sandbox nodes (1 master, 4 workers), each with a disruptive change pending (its",
        "containerd configuration removed: reconfigured, restarted, so cordoned and drained first,",
        f"uncordoned after). Commissioning them took {commission_s:.1f} s.",
        "",
        "| update | wall time (median of " + str(runs) + ") | each run (s) |",
        "|---|---|---|",
    ]
    for mode in MODES:
        each = ", ".join(f"{t:.1f}" for t in times[mode])
        lines.append(f"| {mode} | {statistics.median(times[mode]):.1f} s | {each} |")
    lines += [
        f"| ratio rolling / all at once | {rolling / at_once:.2f}x | |",
        "",
        "A second update of each kind, nothing pending: changed tasks per host, nodes cordoned.",
        "",
        "| update | " + " | ".join(next(iter(second.values()))) + " |",
        "|---|" + "---|" * len(next(iter(second.values()))),
    ]
    for mode, counts in second.items():
        lines.append(f"| {mode} | " + " | ".join(str(v) for v in counts.values()) + " |")
    lines += [
        "",
        "Rolling costs wall time by design: the batches run one after another (one master, then",
        "four batches of one worker), where all at once runs the four workers side by side. What",
        "it buys: at most one worker's pods are evicted at a time, and a failing batch stops the",
        "rollout before it reaches the other nodes.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
