"""The one module that imports ansible_runner: run a playbook, stream its output, report per host.

ansible-runner's sharp edges are handled here, once:
- a `cancel_callback` is always given, else runner installs its own SIGINT/SIGTERM handlers and
  steals the daemon's shutdown signals; it is polled every `pexpect_timeout` (0.2 s, not 5 s), and
  cancel and timeout SIGKILL the playbook's whole process group;
- every run gets a fresh private data dir, so no run sees another's env files;
- the extra vars never reach runner's `extravars`: runner would put them as JSON on
  ansible-playbook's command line, which any local user reads in `ps`, and Ansible would evaluate
  any template in them. They go to `env/extravars` (mode 0600) instead, every string tagged
  `!unsafe` (app.ansible.unsafe), which runner passes as `-e @env/extravars`;
- the event handler is O(1) and returns False, so runner writes no per-event JSON file; the
  per-host results come from the `playbook_on_stats` event itself (runner.stats would be None);
- `suppress_output_file`: the log is ours (bounded); runner's own stdout copy would be unbounded;
- pexpect keeps everything read since its last match (runner never matches: it only waits for
  TIMEOUT) and copies it all at every timeout: memory grew with the job's whole output, and the
  copies slowed the read to a crawl (a job printing 500 MB had reached 190 MB after 10 minutes,
  with 898 MB resident). `_bounded_pexpect_before` keeps only the search window.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import pexpect  # type: ignore[import-untyped]

from app.ansible import unsafe

PEXPECT_TIMEOUT_S = 0.2


def _bounded_pexpect_before() -> None:
    """After each timeout, forget what pexpect read before its search window (see above)."""
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


_bounded_pexpect_before()

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


@dataclass
class RunResult:
    status: str  # successful, failed, canceled, timeout
    rc: int | None
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str | None = None  # why the run could not run or end as Ansible would have it


def ansible_env(
    *, private_key: Path | None, host_key_policy: str, known_hosts: Path
) -> dict[str, str]:
    """Environment for ansible-playbook: its directory on PATH, SSH key and host key policy."""
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    if private_key is not None:
        env["ANSIBLE_PRIVATE_KEY_FILE"] = str(private_key)
    if host_key_policy == "off":
        # runner's own default, made explicit.
        env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    else:
        strict = "accept-new" if host_key_policy == "accept-new" else "yes"
        env["ANSIBLE_HOST_KEY_CHECKING"] = "True"
        env["ANSIBLE_SSH_COMMON_ARGS"] = (
            f"-o StrictHostKeyChecking={strict} -o UserKnownHostsFile={known_hosts}"
        )
    return env


def host_summary(event_data: dict[str, Any]) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    for key, name in _STATS_KEYS.items():
        for host, count in (event_data.get(key) or {}).items():
            hosts.setdefault(host, dict.fromkeys(_STATS_KEYS.values(), 0))[name] = int(count)
    for host in event_data.get("processed") or {}:
        hosts.setdefault(host, dict.fromkeys(_STATS_KEYS.values(), 0))
    return hosts


# Tasks named so report to clusterm (the verified join's attempts): their result goes to on_report.
REPORT_TASK_PREFIX = "clusterm join "


def event_handler(
    on_output: Callable[[str], None],
    stats: dict[str, dict[str, int]],
    on_report: Callable[[str, dict[str, Any]], None] | None = None,
) -> Callable[[dict[str, Any]], bool]:
    """The handler runner calls in its read loop, for every event: O(1), no I/O of its own."""

    def on_event(event: dict[str, Any]) -> bool:
        stdout = event.get("stdout")
        if stdout:
            on_output(stdout)
        kind = event.get("event")
        if kind == "playbook_on_stats":
            stats.update(host_summary(event.get("event_data") or {}))
        elif kind == "runner_on_ok" and on_report is not None:
            data = event.get("event_data") or {}
            task = str(data.get("task") or "")
            if task.startswith(REPORT_TASK_PREFIX):
                on_report(task, data.get("res") or {})
        return False  # no per-event JSON file

    return on_event


def write_extra_vars(private_data_dir: Path, extra_vars: dict[str, Any]) -> Path:
    """The file runner hands to ansible-playbook as `-e @env/extravars` (see above)."""
    return unsafe.write(private_data_dir / "env" / "extravars", extra_vars)


def run_playbook(
    *,
    private_data_dir: Path,
    playbook: Path,
    inventory: Path,
    extra_vars: dict[str, Any],
    env: dict[str, str],
    timeout_s: int,
    on_output: Callable[[str], None],
    should_cancel: Callable[[], bool],
    on_report: Callable[[str, dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run to the end (or cancel, or timeout) in the calling thread; output goes to on_output."""
    stats: dict[str, dict[str, int]] = {}
    private_data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_extra_vars(private_data_dir, extra_vars)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            playbook=str(playbook),
            inventory=str(inventory),
            envvars=env,
            event_handler=event_handler(on_output, stats, on_report),
            cancel_callback=should_cancel,
            timeout=timeout_s,
            settings={"pexpect_timeout": PEXPECT_TIMEOUT_S, "suppress_output_file": True},
            suppress_output_file=True,
            quiet=True,
        )
    except pexpect.exceptions.TIMEOUT:
        # ansible-playbook has exited, but runner's last read of its terminal (5 s, fixed) did
        # not reach the end: seen with output arriving faster than it is read. The play's own
        # recap tells how it went; the rc is unknown.
        on_output(
            "[clusterm: ansible-runner stopped reading the output 5 s after ansible-playbook "
            "exited; the last lines may be missing]"
        )
        if not stats:
            return RunResult(status="failed", rc=None, hosts=stats)
        failed = any(c["failed"] or c["unreachable"] for c in stats.values())
        return RunResult(status="failed" if failed else "successful", rc=None, hosts=stats)
    return RunResult(status=str(runner.status), rc=runner.rc, hosts=stats)
