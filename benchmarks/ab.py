"""A/B benchmarks: a git revision (before) against this working tree (after), in one run.

    .venv/bin/python benchmarks/ab.py --before REV                 # 3 pairs, about 15 minutes
    .venv/bin/python benchmarks/ab.py --before REV --smoke --pairs 1   # proves the harness runs

The before side is a detached git worktree of REV in a temporary directory, removed at the end.
Each benchmark runs alternately from the two checkouts, pair after pair, the order flipping each
pair (before then after, after then before, ...), so both sides see the same machine: a figure
compared across two separate sessions on a shared machine would mostly measure the machine. Both
sides use this interpreter and its virtualenv, and each runs its own copy of the benchmark
scripts, since a script imports the modules of its own revision.

The virtualenv installs clusterm in editable mode, pointing at the after checkout, so the before
side could silently import the after code. Each run therefore puts its checkout on PYTHONPATH
with a probe (a `sitecustomize` module) that records, in every Python process the benchmark
starts (the daemon, its forkserver, the emulated kubelets, the polling clients), where `app`,
`migrations` and `tests` were imported from. A run in which any process imported them from
elsewhere than its own checkout is an error, and the report says what was checked.

Each run prints its figures without touching docs/benchmarks.md (`--no-write`). A side's figure
for a measure is the median of its runs' figures (each run's figure is the benchmark's own: a
p50, a p99, a median). The output is a Markdown section: the figures of both sides, the change,
and which medians are worse than before by more than `--threshold` percent.

Sizes (the defaults, chosen so that 3 pairs take about 15 minutes on 2 quiet cores; the page and
per-event figures do not depend on the sizes reduced):
- timeline: 200,000 events instead of 1,000,000 (a page is answered from an index, so it costs
  the same at any depth; the 10,000-event burst is unchanged);
- jobs: one overhead run per benchmark run instead of three (the pairs give the median), and a
  20 MB job for the peak RSS instead of 500 MB (past the 8 MiB log cap, so the cap still works);
- verbosity: the fan-out to 1,000 nodes, 3 repeats instead of 5, without the 73-second serial
  baseline (the same code with concurrency 1).
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import platform
import re
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

AFTER = Path(__file__).resolve().parents[1]
PY = sys.executable
RUN_TIMEOUT_S = 40 * 60

BENCH_ARGS = {
    "timeline": "--events 200000",
    "jobs": "--runs 1 --big-mb 20",
    "verbosity": "--nodes 1000 --repeats 3 --no-serial",
}
SMOKE_ARGS = {
    "timeline": "--events 5000 --runs 20",
    "jobs": "--runs 1 --poll-seconds 2 --big-mb 0",
    "verbosity": "--nodes 50 --repeats 1 --no-serial",
}

# Put first on PYTHONPATH, this records where each process found the checkout's packages, at the
# moment it imports them; it asks the other finders in their own order, so what it records is
# what the import system would have loaded without it.
PROBE = """\
import json
import os
import sys

_NAMES = {"app", "migrations", "tests"}


class _Probe:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname not in _NAMES:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is cls or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        record = {
            "pid": os.getpid(),
            "name": fullname,
            "origin": spec.origin or list(spec.submodule_search_locations or []),
            "argv": " ".join(getattr(sys, "orig_argv", sys.argv))[:300],
        }
        with open(os.environ["CLUSTERM_AB_PROBE"], "a") as out:
            out.write(json.dumps(record) + "\\n")
        return spec


sys.meta_path.insert(0, _Probe)
"""


@dataclass(frozen=True)
class Measure:
    label: str
    unit: str
    higher_is_better: bool = False
    # The same code on both sides (plain ansible-playbook, bare sqlite3): any change in it is the
    # machine's noise, the yardstick for the others.
    control: bool = False


@dataclass
class Side:
    name: str
    root: Path
    figures: dict[str, list[dict[Measure, float]]] = field(default_factory=dict)
    processes: dict[str, set[str]] = field(default_factory=dict)  # benchmark -> roles seen
    process_count: int = 0


# --- parsing each benchmark's output --------------------------------------------------------

JOBS_MEASURES = {
    ("events", "event_us"): Measure("jobs: event handler (log buffer), per event", "us"),
    ("events", "base_us"): Measure("jobs: no-op handler, per event", "us", control=True),
    ("overhead", "clusterm_s"): Measure(
        "jobs: 20 hosts x 20 tasks through clusterm (POST to finished)", "s"
    ),
    ("overhead", "runner_s"): Measure(
        "jobs: the same playbook through clusterm's ansible-runner wrapper, no daemon", "s"
    ),
    ("overhead", "plain_s"): Measure(
        "jobs: the same playbook, plain ansible-playbook", "s", control=True
    ),
    ("reads", "base_ms"): Measure("jobs: GET /healthz, p50 (curl)", "ms"),
    ("reads", "json_ms"): Measure("jobs: GET /info/job/last, 5 MB log, JSON, p50 (curl)", "ms"),
    ("reads", "text_ms"): Measure("jobs: GET /info/job/last, 5 MB log, text, p50 (curl)", "ms"),
    ("reads", "since_ms"): Measure("jobs: GET /info/job/last?since=, 100 lines, p50 (curl)", "ms"),
    ("reads", "json_py_ms"): Measure("jobs: GET /info/job/last, JSON, p50 (httpx)", "ms"),
    ("reads", "text_py_ms"): Measure("jobs: GET /info/job/last, text, p50 (httpx)", "ms"),
    ("reads", "since_py_ms"): Measure("jobs: GET /info/job/last?since=, p50 (httpx)", "ms"),
    ("polling", "p99_ms"): Measure("jobs: 20 clients polling while a job prints, p99", "ms"),
    ("polling", "idle_p99_ms"): Measure("jobs: 20 clients polling, no job, p99", "ms"),
    ("memory", "rest_mb"): Measure("jobs: daemon RSS at rest", "MB"),
    ("memory", "peak_mb"): Measure("jobs: daemon peak RSS while a job prints", "MB"),
}


def parse_jobs(stdout: str) -> dict[Measure, float]:
    """jobs_bench prints each phase as `name {figures}` when the phase ends."""
    out: dict[Measure, float] = {}
    for line in stdout.splitlines():
        phase, _, rest = line.partition(" ")
        if not rest.startswith("{"):
            continue
        for key, value in ast.literal_eval(rest).items():
            measure = JOBS_MEASURES.get((phase, key))
            if measure is not None:
                out[measure] = float(value)
    return out


def first_number(text: str) -> float:
    match = re.search(r"[\d,]+(?:\.\d+)?", text)
    if match is None:
        raise ValueError(f"no figure in {text!r}")
    return float(match.group().replace(",", ""))


def parse_timeline(stdout: str) -> dict[Measure, float]:
    """timeline_bench prints its Markdown section; each table row holds clusterm's figure and the
    bare sqlite3 baseline's."""
    out: dict[Measure, float] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or cells[0] in ("Measure", "---"):
            continue
        what, figure, _target, _met, baseline, _ratio = cells
        unit = "/s" if "/s" in figure else "ms"
        rate = unit == "/s"
        out[Measure(f"timeline: {what}", unit, higher_is_better=rate)] = first_number(figure)
        out[Measure(f"timeline: {what}, bare sqlite3", unit, rate, control=True)] = first_number(
            baseline
        )
    return out


def parse_verbosity(stdout: str) -> dict[Measure, float]:
    """verbosity_bench prints its results as one JSON object."""
    start = stdout.index("{")
    r, _ = json.JSONDecoder().raw_decode(stdout[start:])
    what = f"verbosity: POST /verbosity to {r['nodes']:,} nodes, concurrency {r['concurrency']}"
    out = {Measure(what, "s"): statistics.median(r["fanout_s"])}
    if r.get("serial_s"):
        out[Measure(f"verbosity: POST /verbosity to {r['nodes']:,} nodes, serial", "s")] = r[
            "serial_s"
        ]
    return out


PARSERS: dict[str, Callable[[str], dict[Measure, float]]] = {
    "jobs": parse_jobs,
    "timeline": parse_timeline,
    "verbosity": parse_verbosity,
}


# --- the before checkout ---------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(  # noqa: S603 - git on our own repository
        ["git", "-C", str(AFTER), *args],  # noqa: S607 - git from PATH, as a developer runs it
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@contextmanager
def worktree(rev: str, parent: Path) -> Iterator[Path]:
    path = parent / "before"
    git("worktree", "add", "--detach", "--quiet", str(path), rev)
    try:
        yield path
    finally:
        try:
            git("worktree", "remove", "--force", str(path))
        except subprocess.CalledProcessError:
            git("worktree", "prune")


def compile_tree(root: Path) -> None:
    """Byte-compile a checkout first, so neither side pays for it in its first run."""
    subprocess.run(  # noqa: S603 - this interpreter, our own files
        [PY, "-m", "compileall", "-q", "app", "migrations", "tests", "benchmarks"],
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
    )


# --- one run -----------------------------------------------------------------------------------


def role(argv: str) -> str:
    if " serve " in argv or argv.endswith(" serve"):
        return "clusterm serve (daemon)"
    if "multiprocessing.forkserver" in argv:
        return "forkserver (job processes)"
    if "spawn_main" in argv:
        return "spawned child (polling client)"
    if "--serve" in argv:
        return "emulated kubelets"
    for word in argv.split():
        if word.endswith(".py"):
            return Path(word).name
    return argv[:60]


def check_provenance(probe_log: Path, side: Side, bench: str) -> str:
    """Every process of the run imported the checkout's packages from its own checkout; returns
    which processes imported `app`, and from where."""
    lines = probe_log.read_text().splitlines() if probe_log.exists() else []
    records = [json.loads(line) for line in lines]
    if not any(r["name"] == "app" for r in records):
        raise RuntimeError(f"{side.name} {bench}: the probe saw no import of app")
    for r in records:
        origins = r["origin"] if isinstance(r["origin"], list) else [r["origin"]]
        for origin in origins:
            if not Path(origin).resolve().is_relative_to(side.root):
                raise RuntimeError(
                    f"{side.name} {bench}: process {r['pid']} ({role(r['argv'])}) imported "
                    f"{r['name']} from {origin}, not from {side.root}"
                )
    side.process_count += len({r["pid"] for r in records})
    side.processes.setdefault(bench, set()).update(role(r["argv"]) for r in records)
    apps = [r for r in records if r["name"] == "app"]
    roles = Counter(role(r["argv"]) for r in apps)
    return f"app from {apps[0]['origin']} in " + ", ".join(f"{n} x {k}" for k, n in roles.items())


def run_once(bench: str, side: Side, args: list[str], work: Path, tag: str) -> tuple[float, str]:
    """Run one benchmark from one checkout; returns its wall time and where it imported app."""
    probe_log = work / f"{tag}.probe.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(work / "probe"), str(side.root)]),
        "CLUSTERM_AB_PROBE": str(probe_log),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    cmd = [PY, str(side.root / "benchmarks" / f"{bench}_bench.py"), *args, "--no-write"]
    start = time.monotonic()
    # Its own session: a run that hangs is killed with the daemon and children it started.
    proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own benchmark
        cmd,
        cwd=side.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    seconds = time.monotonic() - start
    (work / f"{tag}.out").write_text(stdout)
    (work / f"{tag}.err").write_text(stderr)
    if proc.returncode != 0:
        tail = "\n".join((stdout + stderr).splitlines()[-30:])
        raise RuntimeError(f"{side.name} {bench} exited with {proc.returncode}:\n{tail}")
    imports = check_provenance(probe_log, side, bench)
    side.figures.setdefault(bench, []).append(PARSERS[bench](stdout))
    return seconds, imports


# --- report ------------------------------------------------------------------------------------


def fmt(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f} /s"
    digits = 2 if value < 100 else 0
    return f"{value:,.{digits}f} {unit}"


def worse_by(measure: Measure, before: float, after: float) -> float:
    """How much worse after is than before, in percent of before (negative: better)."""
    change = (after - before) / before * 100
    return -change if measure.higher_is_better else change


def signed(pct: float) -> str:
    return "0 %" if round(pct) == 0 else f"{pct:+.0f} %"


def describe(pct: float) -> str:
    if abs(pct) < 0.05:
        return "same"
    return f"{abs(pct):.1f} % {'worse' if pct > 0 else 'better'}"


def table(
    before: Side, after: Side, benches: list[str], threshold: float, *, controls: bool
) -> tuple[list[str], list[str]]:
    rows = [
        "| Measure | Before (median) | After (median) | After vs before | Each pair | |",
        "|---|---|---|---|---|---|",
    ]
    flagged = []
    for bench in benches:
        runs_b, runs_a = before.figures.get(bench, []), after.figures.get(bench, [])
        if not runs_b or not runs_a:
            continue
        for measure in runs_b[0]:
            if measure.control != controls:
                continue
            b = [run[measure] for run in runs_b if measure in run]
            a = [run[measure] for run in runs_a if measure in run]
            if not a:
                continue
            mb, ma = statistics.median(b), statistics.median(a)
            pct = worse_by(measure, mb, ma)
            pairs = ", ".join(signed(-worse_by(measure, x, y)) for x, y in zip(b, a, strict=False))
            bad = pct > threshold
            if bad and not controls:
                flagged.append(f"{measure.label} ({describe(pct)})")
            verdict = f"WORSE > {threshold:g} %" if bad else ""
            rows.append(
                f"| {measure.label} | {fmt(mb, measure.unit)} | {fmt(ma, measure.unit)} "
                f"| {describe(pct)} | {pairs} | {verdict} |"
            )
    return rows, flagged


def machine(load: tuple[float, float]) -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, Linux {platform.release()}; load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end"
    )


def report(
    *,
    before: Side,
    after: Side,
    rev: str,
    benches: list[str],
    bench_args: dict[str, list[str]],
    pairs: int,
    threshold: float,
    started: str,
    minutes: float,
    load: tuple[float, float],
    failures: list[str],
) -> str:
    head = git("rev-parse", "--short", "HEAD")
    dirty = (
        " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    )
    subject = git("log", "-1", "--format=%s", rev)
    command = shlex.join(["python", "benchmarks/ab.py", *sys.argv[1:]])
    runs = "; ".join(
        f"`{bench}_bench.py {shlex.join([*bench_args[bench], '--no-write'])}`" for bench in benches
    )
    checked = "; ".join(
        f"{side.name}: {side.process_count} processes ("
        + ", ".join(sorted({r for roles in side.processes.values() for r in roles}))
        + ")"
        for side in (before, after)
    )
    rows, flagged = table(before, after, benches, threshold, controls=False)
    control_rows, _ = table(before, after, benches, threshold, controls=True)
    lines = [
        "## Before and after (A/B)",
        "",
        f"- Date: {started}; the whole run took {minutes:.1f} min",
        f"- Machine: {machine(load)}",
        f"- Command: `{command}`",
        f"- Before: `{git('rev-parse', '--short', rev)}` ({subject}); after: the working tree at "
        f"`{head}`{dirty}",
        f"- Method: {pairs} {'pair' if pairs == 1 else 'pairs'}. In each pair every benchmark "
        "ran once from each side's checkout, back to back, the order flipping from pair to "
        "pair (before first, then after first), with the same interpreter and virtualenv; "
        f"each side ran its own benchmark scripts: {runs}. A side's figure is the median of "
        "its runs' figures; 'Each pair' is after against before within each pair (+: better).",
        "- Checked in every Python process the runs started: `app`, `migrations` and `tests` "
        f"were imported from that side's own checkout ({checked}).",
        "",
        *rows,
        "",
        "Controls: the same code on both sides, so their change is the machine's noise.",
        "",
        *control_rows,
        "",
    ]
    if failures:
        lines += ["Runs that failed: " + "; ".join(failures), ""]
    if flagged:
        lines += [
            f"Worse than before by more than {threshold:g} %: " + "; ".join(flagged) + ".",
            "",
        ]
    elif not failures:
        lines += [f"No median is worse than before by more than {threshold:g} %.", ""]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--only", default="jobs,timeline,verbosity", help="benchmarks to run")
    parser.add_argument("--threshold", type=float, default=5.0, help="percent worse to flag")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: the figures mean nothing")
    for bench in PARSERS:
        parser.add_argument(f"--{bench}-args", help=f"{bench}_bench.py's arguments, one string")
    parser.add_argument("--out", type=Path, help="also write the Markdown section to this file")
    args = parser.parse_args()
    benches = [b for b in args.only.split(",") if b]
    if unknown := set(benches) - set(PARSERS):
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    defaults = SMOKE_ARGS if args.smoke else BENCH_ARGS
    bench_args = {b: shlex.split(getattr(args, f"{b}_args") or defaults[b]) for b in PARSERS}
    rev = git("rev-parse", "--verify", f"{args.before}^{{commit}}")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # so that the worktree is removed

    signal.signal(signal.SIGTERM, stop)
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    load_start = os.getloadavg()[0]
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="clusterm-ab-") as tmp:
        work = Path(tmp)
        (work / "probe").mkdir()
        (work / "probe" / "sitecustomize.py").write_text(PROBE)
        with worktree(rev, work) as before_root:
            before = Side("before", before_root.resolve())
            after = Side("after", AFTER)
            for side in (before, after):
                compile_tree(side.root)
            for pair in range(args.pairs):
                order = (before, after) if pair % 2 == 0 else (after, before)
                for bench in benches:
                    if any(f.startswith(f"{bench}:") for f in failures):
                        continue
                    for side in order:
                        tag = f"{bench}-{pair}-{side.name}"
                        try:
                            seconds, imports = run_once(bench, side, bench_args[bench], work, tag)
                        except RuntimeError as exc:
                            print(exc, file=sys.stderr, flush=True)
                            failures.append(f"{bench}: {str(exc).splitlines()[0]}")
                            break
                        print(
                            f"pair {pair + 1}/{args.pairs} {bench} {side.name}: {seconds:.0f} s"
                            f" ({imports})",
                            file=sys.stderr,
                            flush=True,
                        )
    section = report(
        before=before,
        after=after,
        rev=rev,
        benches=benches,
        bench_args=bench_args,
        pairs=args.pairs,
        threshold=args.threshold,
        started=started,
        minutes=(time.monotonic() - t0) / 60,
        load=(load_start, os.getloadavg()[0]),
        failures=failures,
    )
    print(section)
    if args.out:
        args.out.write_text(section)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
