"""The extra vars an operator may send with a job, each declared here with its type and bounds.

An admin may send any extra var. An operator may send only a declared one: the timing, retry and
rollout knobs of the playbooks (`KNOBS`), plus what the setting `operator_extra_vars` declares.
Anything else is admin-only, because an extra var outranks everything in Ansible:
`ansible_connection` picks where commands run, `clusterm_env` or `clusterm_kubectl` what runs,
`clusterm_node_root` where files go, `clusterm_k8s_apt_repo` where software comes from, and a
name the playbooks register or set as a fact (`clusterm_join_command`) would replace that result.
A declared var with a value of the wrong type or out of its bounds is refused too: `"1; touch x"`
is not a number of seconds, whatever a playbook does with it.

Every value, whoever sent it, is still written as data Ansible never templates (app.ansible.unsafe).

A core module beside the settings, not part of the jobs domain: the settings check the
declarations when they are loaded, and the core imports no domain (jobs then checks requests).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.auth.vocabulary import Role
from app.errors import Forbidden, Invalid

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class VarSpec(BaseModel):
    """How one operator-settable extra var is typed (`operator_extra_vars` in the settings).

    `int` takes `min` and `max` (both required: an operator's number is always bounded); `str`
    takes `max_length`; `bool` takes nothing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int", "bool", "str"]
    min: int | None = Field(default=None, description="int: smallest value allowed")
    max: int | None = Field(default=None, description="int: largest value allowed")
    max_length: int | None = Field(
        default=None, ge=1, le=4096, description="str: longest value (default 256)"
    )

    @model_validator(mode="after")
    def _bounds_fit_the_type(self) -> VarSpec:
        if self.type == "int":
            if self.min is None or self.max is None:
                raise ValueError("an int needs both min and max")
            if self.min > self.max:
                raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        elif self.min is not None or self.max is not None:
            raise ValueError(f"min and max are for an int, not a {self.type}")
        if self.max_length is not None and self.type != "str":
            raise ValueError(f"max_length is for a str, not a {self.type}")
        return self

    def describe(self) -> str:
        if self.type == "int":
            return f"an integer from {self.min} to {self.max}"
        if self.type == "bool":
            return "true or false"
        return f"a string of at most {self.longest} characters"

    @property
    def longest(self) -> int:
        return self.max_length or 256

    def accepts(self, value: Any) -> bool:
        if self.type == "bool":
            return isinstance(value, bool)
        if self.type == "str":
            return isinstance(value, str) and len(value) <= self.longest
        # JSON's true is a Python int, and 5.0 is not an integer: neither is one here.
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        low, high = self.min, self.max
        return low is not None and high is not None and low <= value <= high


def _int(low: int, high: int) -> VarSpec:
    return VarSpec(type="int", min=low, max=high)


# The playbooks' timing, retry and rollout knobs (the roles' and playbooks' defaults). Seconds
# are bounded at hours, not days: a job that waits longer has already failed, and job_timeout_s
# ends it anyway. The rollout's are percentages: of the job's workers per batch (at least one
# node), and of a batch's nodes that may fail before the rollout stops.
KNOBS: dict[str, VarSpec] = {
    "clusterm_drain_timeout": _int(1, 4 * 3600),
    "clusterm_join_retries": _int(1, 20),
    "clusterm_join_timeout": _int(1, 3600),
    "clusterm_join_register_timeout": _int(1, 3600),
    "clusterm_join_stability_window": _int(0, 3600),
    "clusterm_join_poll": _int(1, 300),
    "clusterm_join_backoff": _int(0, 3600),
    "clusterm_join_backoff_max": _int(0, 3600),
    "clusterm_update_batch": _int(1, 100),
    "clusterm_max_fail_percentage": _int(0, 100),
}

# Admin-only whatever the settings say: they choose a host, a command, a path or a software
# source. Other `clusterm_*` names are the playbooks' own state (registered results, facts) and
# may not be declared either; the ones below PLAIN_SETTINGS are settings without such power.
ADMIN_ONLY = (
    "ansible_*",
    "clusterm_env",
    "clusterm_node_root",
    "clusterm_first_master",
    "clusterm_kubectl",
    "clusterm_k8s_*",
    "clusterm_cni_*",
    "clusterm_allow_name_mismatch",
)
PLAIN_SETTINGS = frozenset({*KNOBS, "clusterm_purge_packages", "clusterm_pod_network_cidr"})
# Ansible's own names: overriding one changes which host, loop item or path a task sees.
ANSIBLE_NAMES = frozenset(
    {
        "environment",
        "group_names",
        "groups",
        "hostvars",
        "inventory_dir",
        "inventory_file",
        "inventory_hostname",
        "inventory_hostname_short",
        "item",
        "omit",
        "play_hosts",
        "playbook_dir",
        "role_name",
        "role_names",
        "role_path",
        "vars",
    }
)


def admin_only(name: str) -> bool:
    """Whether `name` may never be declared for operators."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in ADMIN_ONLY):
        return True
    if name.startswith("clusterm_") and name not in PLAIN_SETTINGS:
        return True
    return name in ANSIBLE_NAMES


def _check_declarations(declared: dict[str, VarSpec]) -> dict[str, VarSpec]:
    for name in declared:
        if not _NAME_RE.match(name):
            raise ValueError(f"{name!r} is not a valid Ansible variable name")
        if admin_only(name):
            raise ValueError(
                f"{name!r} cannot be declared for operators: it is admin-only (it can choose a "
                "host, a command, a path or a software source, or it is a name the playbooks "
                "or Ansible set themselves)"
            )
    return declared


# The type of the setting: declarations checked when the settings are loaded.
OperatorVars = Annotated[dict[str, VarSpec], AfterValidator(_check_declarations)]


def operator_vars(declared: Mapping[str, VarSpec]) -> dict[str, VarSpec]:
    """What an operator may send: the knobs, then the settings' declarations (which win)."""
    return {**KNOBS, **declared}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list) else "an object"


def check_operator_vars(extra_vars: Mapping[str, Any], *, declared: Mapping[str, VarSpec]) -> None:
    """Refuse (403) an undeclared var, then (422) a declared one whose value does not fit.

    The message names each variable; values are never echoed (they may be secrets).
    """
    allowed = operator_vars(declared)
    refused = sorted(name for name in extra_vars if name not in allowed)
    if refused:
        names = ", ".join(refused)
        raise Forbidden(
            f"extra var{'s' if len(refused) > 1 else ''} {names} may be set by the admin role "
            "only: an operator may send only the declared vars ("
            + ", ".join(sorted(allowed))
            + "). Ask an admin to run the job, or to declare the var in the setting "
            "operator_extra_vars",
            variables=refused,
            required_role=Role.ADMIN,
        )
    for name, value in extra_vars.items():
        spec = allowed[name]
        if not spec.accepts(value):
            raise Invalid(
                f"extra var {name} must be {spec.describe()}; got {_json_type(value)}",
                field=f"extra_vars.{name}",
                variable=name,
                type=spec.type,
                **({"min": spec.min, "max": spec.max} if spec.type == "int" else {}),
                **({"max_length": spec.longest} if spec.type == "str" else {}),
            )
