"""What a playbook run is given (RunSpec) and what it gives back (RunResult).

A spec crosses a process boundary (app.ansible.process pickles it to the child that runs
ansible-runner) and is read from two threads there, so it is frozen, and its two mappings are
read-only copies: nothing the caller changes afterwards reaches a run already started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_vars", MappingProxyType(dict(self.extra_vars)))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def __reduce__(self) -> tuple[type[RunSpec], tuple[Any, ...]]:
        # A MappingProxyType cannot be pickled: the spec travels with plain dicts and is frozen
        # again on the other side.
        return (
            RunSpec,
            (
                self.private_data_dir,
                self.playbook,
                self.inventory,
                dict(self.extra_vars),
                dict(self.env),
                self.timeout_s,
                self.wants_reports,
            ),
        )


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
