"""Scaling benchmark: run with `.venv/bin/python benchmarks/scale_bench.py`.

Shows how each of clusterm's costs grows with the size of the cluster, in one run, and writes
the table to docs/benchmarks.md under "## Scale" (date, machine, command):

- inventory of 100 / 1,000 / 5,000 nodes (benchmarks/scale/inventory.py);
- a 20-task job over 10 / 50 / 200 hosts in the local-connection sandbox, through clusterm vs
  ansible-runner alone vs plain ansible-playbook (benchmarks/scale/jobs.py);
- timeline pages at 10 k / 100 k / 1 M events over HTTP (benchmarks/scale/timeline.py);
- cancel latency over 10 cancels of a running job (benchmarks/scale/cancel.py).

Every row names its baseline, measured in the same run, and its ratio. A cost that should stay
flat (a page at any depth, a poll during a 200-host job) shows its growth from the smallest size.

`--only jobs,timeline` runs some parts; `--quick` runs every part at small sizes (a smoke run
of a few minutes, figures not meaningful); `--no-write` prints without touching the doc.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs_bench import machine, write_doc
from scale import cancel, inventory, jobs, timeline
from scale.common import Row, fmt

HEADING = "## Scale"
PARTS: dict[str, Callable[[bool], list[Row]]] = {
    "inventory": inventory.run,
    "jobs": jobs.run,
    "timeline": timeline.run,
    "cancel": cancel.run,
}


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| Area | Measure | Size | Figure | Growth from smallest | Baseline (same run) | Ratio "
        "| Target | Met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    smallest: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r.area, r.measure)
        smallest.setdefault(key, r.figure)
        growth = r.figure / smallest[key] if smallest[key] else 0.0
        growth_text = f"{growth:.2f}x" + (" (flat expected)" if r.flat else "")
        base = (
            f"{r.baseline} {fmt(r.baseline_figure, r.unit)}"
            if r.baseline_figure is not None
            else r.baseline
        )
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        met = {None: "", True: "met", False: "MISSED"}[r.met]
        measure = r.measure + (f" ({r.note})" if r.note else "")
        lines.append(
            f"| {r.area} | {measure} | {r.size:,} | {fmt(r.figure, r.unit)} | {growth_text} "
            f"| {base} | {ratio} | {r.target} | {met} |"
        )
    return lines


def report(rows: list[Row], command: str, started: str, host: str, seconds: float) -> str:
    missed = [r for r in rows if r.met is False]
    lines = [
        HEADING,
        "",
        f"- Date: {started}",
        f"- Machine: {host}",
        f"- Command: `{command}` ({seconds / 60:.1f} minutes)",
        "",
        *table(rows),
        "",
        f"Targets missed: {len(missed)}." if missed else "Every target in the table is met.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print, do not update the doc")
    args = parser.parse_args()
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose among {', '.join(PARTS)}")
    command = " ".join(["python benchmarks/scale_bench.py", *sys.argv[1:]])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()  # with the load average before anything here ran
    began = time.monotonic()
    rows: list[Row] = []
    for name in chosen:
        part_rows = PARTS[name](args.quick)
        rows.extend(part_rows)
        print("\n".join(table(part_rows)), flush=True)
    section = report(rows, command, started, host, time.monotonic() - began)
    print(section)
    if not args.no_write and not args.quick:
        write_doc(section, HEADING)


if __name__ == "__main__":
    main()
