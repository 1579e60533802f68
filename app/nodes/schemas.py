"""What a node looks like on the wire, and every rule its fields must follow."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

MAX_VARS_BYTES = 64 * 1024

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SSH_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")

GROUP_ALIASES = {
    "master": "master",
    "worker": "worker",
    # the original clusterm's names, still in users' scripts
    "service-master": "master",
    "service-worker": "worker",
}


def check_node_name(name: str) -> str:
    """A DNS-1123 subdomain: what Kubernetes accepts as a Node name."""
    if not name.isascii():
        raise ValueError("must be ASCII: lowercase letters, digits, '-' and '.'")
    if len(name) > 253:
        raise ValueError(f"is {len(name)} characters long; at most 253 are allowed")
    if name != name.lower():
        raise ValueError("must be lowercase (Kubernetes node names are DNS-1123 names)")
    for label in name.split("."):
        if not _LABEL_RE.match(label):
            raise ValueError(
                f"label {label!r} is not a DNS-1123 label: 1-63 lowercase letters, digits or '-', "
                "starting and ending with a letter or digit"
            )
    return name


def _check_address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    if not address.isascii() or len(address) > 253:
        raise ValueError("must be an IP address or a DNS name of at most 253 ASCII characters")
    labels = address.rstrip(".").split(".")
    if not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise ValueError("is neither an IP address nor a valid DNS name")
    return address


def _check_ssh_user(user: str) -> str:
    if not _SSH_USER_RE.match(user):
        raise ValueError("must be a POSIX user name: lowercase letters, digits, '_' or '-'")
    return user


def _normalise_group(value: Any) -> Any:
    if isinstance(value, str) and value in GROUP_ALIASES:
        return GROUP_ALIASES[value]
    return value


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not _LABEL_KEY_RE.match(key):
            raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
        if not _LABEL_VALUE_RE.match(value):
            raise ValueError(f"label {key!r} has value {value!r}, not a valid label value")
    return labels


def _check_vars(variables: dict[str, Any]) -> dict[str, Any]:
    for key in variables:
        if not _VAR_NAME_RE.match(key):
            raise ValueError(f"{key!r} is not a valid Ansible variable name")
    if len(json.dumps(variables)) > MAX_VARS_BYTES:
        raise ValueError(f"is larger than {MAX_VARS_BYTES} bytes as JSON")
    return variables


NodeName = Annotated[str, AfterValidator(check_node_name)]
Address = Annotated[str, AfterValidator(_check_address)]
SshUser = Annotated[str, AfterValidator(_check_ssh_user)]
HostGroup = Annotated[Literal["master", "worker"], BeforeValidator(_normalise_group)]
SshPort = Annotated[int, Field(ge=1, le=65535)]
Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]
Vars = Annotated[dict[str, Any], AfterValidator(_check_vars)]


class _Input(BaseModel):
    # strict: "22" is not a port and 1 is not a name; extra=forbid: a typo is an error, not a no-op.
    model_config = ConfigDict(extra="forbid", strict=True)


class NodeCreate(_Input):
    name: NodeName
    address: Address
    ssh_port: SshPort = 22
    ssh_user: SshUser = "root"
    host_group: HostGroup = "worker"
    labels: Labels = Field(default_factory=dict)
    vars: Vars = Field(default_factory=dict)


class NodeUpdate(_Input):
    """A partial change; `labels` and `vars` replace the whole map."""

    address: Address | None = None
    ssh_port: SshPort | None = None
    ssh_user: SshUser | None = None
    host_group: HostGroup | None = None
    labels: Labels | None = None
    vars: Vars | None = None


class MaintenanceChange(_Input):
    enabled: bool


class NodeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    address: str
    ssh_port: int
    ssh_user: str
    host_group: str
    labels: dict[str, str]
    vars: dict[str, Any]
    state: str
    created_at: dt.datetime
    updated_at: dt.datetime
    in_cluster: bool | None = Field(
        description="whether the cluster's Node list holds it at the last drift check; "
        "null before any check"
    )
    last_seen_at: dt.datetime | None
    missing_since: dt.datetime | None
