"""What a playbook run is given (RunSpec) and what it gives back (RunResult).

A spec crosses a process boundary (app.ansible.process pickles it to the child that runs
ansible-runner) and is read from two threads there, so it is frozen, and its two mappings are
read-only copies: nothing the caller changes afterwards reaches a run already started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any


class Priority(StrEnum):
    """How a run's processes share the CPU with the daemon (docs/jobs.md#priority)."""

    IDLE = "idle"  # SCHED_IDLE: whenever a process of normal priority wants a core, it gets it
    LOW = "low"  # niceness +10
    NORMAL = "normal"


@dataclass(frozen=True, slots=True)
class RunSpec:
    # A fresh directory per run: runner keeps its env files and artifacts there, and
    # app.ansible.leftovers its record of the run's processes.
    private_data_dir: Path
    playbook: Path  # absolute: ansible-playbook runs in private_data_dir
    inventory: Path
    extra_vars: Mapping[str, Any]
    env: Mapping[str, str]
    timeout_s: int
    wants_reports: bool = False  # whether the run's report tasks reach on_report
    # Every task's result reaches on_tasks; False: only the failed and unreachable ones (the
    # setting job_task_results off still explains a host's failure).
    all_task_results: bool = True
    # ansible-playbook --check --diff: every task says whether it would change something.
    check: bool = False
    # --tags / --skip-tags: names a request gave, checked against the playbook's own
    # (app.ansible.tags), so never a comma or anything else a command line would read.
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    # The CPU priority of the process running ansible-runner, so of everything it starts.
    priority: Priority = Priority.NORMAL

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_vars", MappingProxyType(dict(self.extra_vars)))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "skip_tags", tuple(self.skip_tags))

    def __reduce__(self) -> tuple[type[RunSpec], tuple[Any, ...]]:
        # A MappingProxyType cannot be pickled: the spec travels with plain dicts and is frozen
        # again on the other side.
        values = (getattr(self, f.name) for f in fields(self))
        return (RunSpec, tuple(dict(v) if isinstance(v, Mapping) else v for v in values))


class RunStatus(StrEnum):
    """How a run ended: ansible-runner's final statuses, which clusterm's job statuses share."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class RunResult:
    status: RunStatus
    rc: int | None
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)  # the recap, per host
    error: str | None = None  # why the run could not run or end as Ansible would have it
    # Per host, the task it had started and not ended when the run stopped (a cancel, a timeout).
    running: dict[str, str] = field(default_factory=dict)


class TaskStatus(StrEnum):
    """How one task ended on one host. `changed` is ok with a change; `ignored` failed under
    ignore_errors; `rescued` failed inside a block whose rescue ran (known from the recap)."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    IGNORED = "ignored"
    RESCUED = "rescued"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


# A task result's texts are cut to these many characters before they leave the runner's process.
TASK_NAME_MAX = 512
TASK_TEXT_MAX = 2048


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One task's end on one host, as ansible-runner's event told it (never its arguments).

    `msg`, `rc` and the tails of stdout/stderr are kept for a failed or unreachable task only;
    a no_log task's result arrives censored and its `msg` says so."""

    host: str
    task: str
    role: str | None
    action: str
    status: TaskStatus
    started_at: str | None  # ISO 8601, UTC, as the event gives it
    duration_s: float | None
    msg: str | None = None
    rc: int | None = None
    stdout_tail: str | None = None
    stderr_tail: str | None = None
