"""The one module that imports ansible_runner: run a playbook, stream its output, report per host.

ansible-runner's sharp edges are handled here, once (docs/contracts.md#ansible-runner):
- a `cancel_callback` is always given, else runner installs its own SIGINT/SIGTERM handlers and
  steals the daemon's shutdown signals (docs/contracts.md#runner-signal-handlers); it is polled
  every `pexpect_timeout` (0.2 s, not 5 s), and cancel and timeout SIGKILL the playbook's whole
  process group (docs/contracts.md#runner-cancel-latency);
- every run gets a fresh private data dir, so no run sees another's env files
  (docs/contracts.md#runner-env-files);
- the extra vars never reach runner's `extravars`: runner would put them as JSON on
  ansible-playbook's command line, which any local user reads in `ps`, and Ansible would evaluate
  any template in them. They go to `env/extravars` (mode 0600) instead, every string tagged
  `!unsafe` (app.ansible.unsafe), which runner passes as `-e @env/extravars`
  (docs/contracts.md#runner-extravars);
- the event handler is O(1) and returns False, so runner writes no per-event JSON file; the
  per-host results come from the `playbook_on_stats` event itself (runner.stats would be None)
  (docs/contracts.md#runner-event-handler);
- `suppress_output_file`: the log is ours (bounded); runner's own stdout copy would be unbounded
  (docs/contracts.md#runner-output-file);
- pexpect keeps everything read since its last match (runner never matches: it only waits for
  TIMEOUT) and copies it all at every timeout: memory grew with the job's whole output, and the
  copies slowed the read to a crawl (docs/contracts.md#pexpect-buffer). `bound_pexpect_before`
  keeps only the search window; it patches pexpect for the whole process, so it is applied by
  run_playbook, in the child that runs it (app.ansible.process), never at import;
- costs that are runner's own and buy clusterm nothing (docs/contracts.md#runner-output-buffering
  and #pexpect-close): ansible-playbook's stdout is runner's pty, and an unbuffered stdout
  (PYTHONUNBUFFERED, often set in a container and inherited from the daemon) writes each of the
  callback's event tokens to it in pieces: more than twice the writes, and twice the reads of
  runner's loop. The playbook gets PYTHONUNBUFFERED empty unless its env sets it.
  Line-buffered on a terminal, every line still reaches runner as it is printed. And pexpect
  waits 0.1 s after closing the pty "for the kernel to update the child's status": runner
  closes it only once it has reaped the child, so `quick_pexpect_close` drops that wait;
- runner's display callback runs in ansible-playbook's main process, the one a job waits on:
  `playbook_env` puts clusterm's `awx_display` (app/ansible/callback) before it, which runs
  runner's own and takes three of its costs out, one of them a file created per event: the
  events' data comes back through clusterm's journal instead (app.ansible.eventjournal, put in
  front of the event handler; docs/contracts.md#runner-display-callback).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ansible_runner
import pexpect  # type: ignore[import-untyped]

from app.ansible import eventjournal, unsafe
from app.ansible.spec import RunResult, RunSpec, RunStatus, TaskResult, TaskStatus
from app.ansible.taskresults import task_result

PEXPECT_TIMEOUT_S = 0.2


def bound_pexpect_before() -> None:
    """After each timeout, forget what pexpect read before its search window (see above).

    Idempotent: the patch is applied once per process."""
    expecter = pexpect.expect.Expecter
    if getattr(expecter.timeout, "clusterm_bounded", False):
        return
    original = expecter.timeout

    def timeout(self: Any, err: Any = None) -> Any:
        index = original(self, err)
        spawn = self.spawn
        spawn._before = spawn.buffer_type()
        spawn._before.write(spawn._buffer.getvalue())  # the search window: 100 chars in runner
        return index

    timeout.clusterm_bounded = True  # type: ignore[attr-defined]
    expecter.timeout = timeout


def quick_pexpect_close() -> None:
    """No 0.1 s sleep when runner closes the playbook's pty (see above); idempotent.

    runner calls close() once its read loop has seen the child end (isalive() False, which reaps
    it); were the child alive anyway, ptyprocess still terminates it, with its own waits."""
    spawn = pexpect.pty_spawn.spawn
    if getattr(spawn.close, "clusterm_quick", False):
        return
    original = spawn.close

    def close(self: Any, force: bool = True) -> Any:
        self.ptyproc.delayafterclose = 0
        return original(self, force)

    close.clusterm_quick = True  # type: ignore[attr-defined]
    spawn.close = close


# ansible-playbook's environment as runner gets it, under the run's own env (see above).
_PLAYBOOK_ENV = {"PYTHONUNBUFFERED": ""}

# clusterm's `awx_display` (docs/contracts.md#runner-display-callback): runner's display callback
# with three of its costs in ansible-playbook's main process taken out. Ansible takes the first
# callback of a name along ANSIBLE_CALLBACK_PLUGINS, and runner appends its own directory.
CALLBACK_DIR = Path(__file__).parent / "callback"


def playbook_env(env: Mapping[str, str], journal: Path | None = None) -> dict[str, str]:
    """The envvars runner gets: clusterm's defaults, the run's env, clusterm's callback first
    and the directory of its event journal."""
    plugins = ":".join(filter(None, (str(CALLBACK_DIR), env.get("ANSIBLE_CALLBACK_PLUGINS"))))
    ours = {"ANSIBLE_CALLBACK_PLUGINS": plugins}
    if journal is not None:
        ours[eventjournal.JOURNAL_ENV] = str(journal)
    return {**_PLAYBOOK_ENV, **env, **ours}


# playbook_on_stats keys -> the names clusterm shows.
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def host_summary(event_data: dict[str, Any]) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    for key, name in _STATS_KEYS.items():
        for host, count in (event_data.get(key) or {}).items():
            hosts.setdefault(host, dict.fromkeys(_STATS_KEYS.values(), 0))[name] = int(count)
    for host in event_data.get("processed") or {}:
        hosts.setdefault(host, dict.fromkeys(_STATS_KEYS.values(), 0))
    return hosts


# A report to clusterm (ansible/README.md, "What clusterm reads from the run"): a debug task
# showing `clusterm_report`, a mapping with a string `type`. Only debug: its result is made on the
# controller from the playbook's own variables, where a module's result is whatever the node sent.
REPORT_VAR = "clusterm_report"
REPORT_ACTIONS = frozenset({"debug", "ansible.builtin.debug", "ansible.legacy.debug"})


def report_of(event_data: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The (type, report) a runner_on_ok event carries; None for any other result."""
    action = event_data.get("resolved_action") or event_data.get("task_action")
    res = event_data.get("res")
    if action not in REPORT_ACTIONS or not isinstance(res, dict):
        return None
    report = res.get(REPORT_VAR)
    if not isinstance(report, dict) or not isinstance(report.get("type"), str):
        return None
    return report["type"], report


_FAILURES = frozenset({TaskStatus.FAILED, TaskStatus.UNREACHABLE})


def event_handler(
    on_output: Callable[[str], None],
    stats: dict[str, dict[str, int]],
    on_report: Callable[[str, dict[str, Any]], None] | None = None,
    on_task: Callable[[TaskResult], None] | None = None,
    running: dict[str, str] | None = None,
    all_tasks: bool = True,
) -> Callable[[dict[str, Any]], bool]:
    """The handler runner calls in its read loop, for every event: O(1), no I/O of its own.

    `running` holds, per host, the task started and not ended yet; on_task hears of every task's
    end (only of failures unless `all_tasks`)."""

    def on_event(event: dict[str, Any]) -> bool:
        stdout = event.get("stdout")
        if stdout:
            on_output(stdout)
        kind = event.get("event")
        if kind == "runner_on_start" and running is not None:
            data = event.get("event_data") or {}
            running[str(data.get("host") or "")] = str(data.get("task") or "")
        elif on_task is not None and (result := task_result(event)) is not None:
            if running is not None:
                running.pop(result.host, None)
            if all_tasks or result.status in _FAILURES:
                on_task(result)
        if kind == "playbook_on_stats":
            stats.update(host_summary(event.get("event_data") or {}))
        elif (
            kind == "runner_on_ok"
            and on_report is not None
            and (report := report_of(event.get("event_data") or {})) is not None
        ):
            on_report(*report)
        return False  # no per-event JSON file

    return on_event


def write_extra_vars(private_data_dir: Path, extra_vars: Mapping[str, Any]) -> Path:
    """The file runner hands to ansible-playbook as `-e @env/extravars` (see above)."""
    return unsafe.write(private_data_dir / "env" / "extravars", dict(extra_vars))


def playbook_options(spec: RunSpec) -> dict[str, str]:
    """Check mode and tags as runner takes them. runner splits `cmdline` with shlex and puts each
    of `tags` and `skip_tags` after its option as one argument of ansible-playbook's argv (no
    shell runs it); the tag names are checked names (app.ansible.tags), joined by commas as
    --tags takes them, and `cmdline` holds only these fixed words."""
    options = {}
    if spec.check:
        options["cmdline"] = "--check --diff"
    if spec.tags:
        options["tags"] = ",".join(spec.tags)
    if spec.skip_tags:
        options["skip_tags"] = ",".join(spec.skip_tags)
    return options


def run_playbook(
    spec: RunSpec,
    *,
    on_output: Callable[[str], None],
    should_cancel: Callable[[], bool],
    on_report: Callable[[str, dict[str, Any]], None] | None = None,
    on_task: Callable[[TaskResult], None] | None = None,
) -> RunResult:
    """Run to the end (or cancel, or timeout) in the calling thread; output goes to on_output."""
    bound_pexpect_before()
    quick_pexpect_close()
    stats: dict[str, dict[str, int]] = {}
    running: dict[str, str] = {}
    spec.private_data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_extra_vars(spec.private_data_dir, spec.extra_vars)
    journal = eventjournal.EventJournal(spec.private_data_dir / "events")
    try:
        runner = ansible_runner.run(
            private_data_dir=str(spec.private_data_dir),
            playbook=str(spec.playbook),
            inventory=str(spec.inventory),
            envvars=playbook_env(spec.env, journal.create()),
            event_handler=journal.merging(
                event_handler(on_output, stats, on_report, on_task, running, spec.all_task_results)
            ),
            **playbook_options(spec),
            cancel_callback=should_cancel,
            timeout=spec.timeout_s,
            settings={"pexpect_timeout": PEXPECT_TIMEOUT_S, "suppress_output_file": True},
            suppress_output_file=True,
            quiet=True,
        )
    except pexpect.exceptions.TIMEOUT:
        # ansible-playbook has exited, but runner's last read of its terminal (5 s, fixed) did
        # not reach the end: seen with output arriving faster than it is read. The play's own
        # recap tells how it went; the rc is unknown (see docs/contracts.md#runner-final-read).
        on_output(
            "[clusterm: ansible-runner stopped reading the output 5 s after ansible-playbook "
            "exited; the last lines may be missing]"
        )
        failed = not stats or any(c["failed"] or c["unreachable"] for c in stats.values())
        status = RunStatus.FAILED if failed else RunStatus.SUCCESSFUL
        return RunResult(status=status, rc=None, hosts=stats, running=running)
    finally:
        journal.close()
    # runner ends every run in one of these four (its Runner.run); anything else is a new
    # runner this code has not been checked against, and fails loudly here.
    return RunResult(status=RunStatus(runner.status), rc=runner.rc, hosts=stats, running=running)
