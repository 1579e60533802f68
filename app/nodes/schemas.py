"""What a node looks like on the wire, and every rule its fields must follow."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import re
import socket
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
)

from app.nodes.vocabulary import HostGroup, State

MAX_VARS_BYTES = 64 * 1024
# Deeper than any inventory needs, shallow enough for every JSON reader and writer on the way.
MAX_VARS_DEPTH = 32

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
MAX_ZONE_ID = 15  # an interface name: IFNAMSIZ less the terminating NUL
_ZONE_RE = re.compile(rf"^[A-Za-z0-9_.-]{{1,{MAX_ZONE_ID}}}$")
_SSH_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")

GROUP_ALIASES = {
    **{group.value: group for group in HostGroup},
    # the original clusterm's names, still in users' scripts (docs/contracts.md#contiv-clusterm)
    "service-master": HostGroup.MASTER,
    "service-worker": HostGroup.WORKER,
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
        if not _LABEL_RE.fullmatch(label):
            raise ValueError(
                f"label {label!r} is not a DNS-1123 label: 1-63 lowercase letters, digits or '-', "
                "starting and ending with a letter or digit"
            )
    return name


def check_address(address: str) -> str:
    """An IPv4 address, an IPv6 address (optionally with a short zone id), or a DNS name.

    Strict because an address ends up in URLs, in SSH's command line and in Ansible's inventory:
    Python's `ipaddress` takes an IPv6 zone id of any characters (`::1%]@other:81#`), which would
    move a URL built around it to another host, and the C resolver reads `127.1` or `0x7f000001`
    as IPv4 addresses that no check here would have seen.
    """
    if not address.isascii() or len(address) > 253:
        raise ValueError("must be an IP address or a DNS name of at most 253 ASCII characters")
    if ":" in address:
        return _check_ipv6(address)
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        pass
    labels = address.removesuffix(".").split(".")
    if not all(_HOST_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError(
            "is neither an IP address nor a DNS name (labels of 1-63 letters, digits or '-', "
            "separated by dots)"
        )
    if labels[-1].isdigit() or _reads_as_ipv4(address):
        raise ValueError(
            f"{address!r} is not an IPv4 address: write four decimal numbers 0-255 without "
            "leading zeros, as 10.0.0.7"
        )
    return address


def _reads_as_ipv4(address: str) -> bool:
    # inet_aton is what getaddrinfo falls back on: it takes hex, octal and short forms.
    try:
        socket.inet_aton(address)
    except (OSError, ValueError):
        return False
    return True


def _check_ipv6(address: str) -> str:
    bare, sep, zone = address.partition("%")
    if sep and not _ZONE_RE.fullmatch(zone):
        raise ValueError(
            f"IPv6 zone id {zone[:20]!r} must be 1 to {MAX_ZONE_ID} letters, digits, '_', '.' "
            "or '-' (an interface name such as eth0)"
        )
    try:
        ip = ipaddress.IPv6Address(bare)
    except ValueError:
        raise ValueError(f"{address[:64]!r} is not a valid IPv6 address") from None
    return f"{ip}%{zone}" if sep else str(ip)


def _check_ssh_user(user: str) -> str:
    if not _SSH_USER_RE.fullmatch(user):
        raise ValueError("must be a POSIX user name: lowercase letters, digits, '_' or '-'")
    return user


def _normalise_group(value: Any) -> Any:
    if isinstance(value, str) and value in GROUP_ALIASES:
        return GROUP_ALIASES[value]
    return value


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not _LABEL_KEY_RE.fullmatch(key):
            raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
        if not _LABEL_VALUE_RE.fullmatch(value):
            raise ValueError(f"label {key!r} has value {value!r}, not a valid label value")
    return labels


def _check_vars(variables: dict[str, Any]) -> dict[str, Any]:
    for key in variables:
        if not _VAR_NAME_RE.fullmatch(key):
            raise ValueError(f"{key!r} is not a valid Ansible variable name")
    _check_values(variables)
    if len(json.dumps(variables)) > MAX_VARS_BYTES:
        raise ValueError(f"is larger than {MAX_VARS_BYTES} bytes as JSON")
    return variables


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_vars_value(key: str, value: Any) -> None:
    """ValueError when one var's value could not be stored and read back (see below)."""
    _check_values({key: value})


def _check_values(variables: dict[str, Any]) -> None:
    """Refuse what could be stored but not read back: deep nesting (every reader of the node,
    from the API's own answer to Ansible, would fail on it), numbers JSON has no word for, and
    NUL characters, which PostgreSQL refuses in JSON text, and lone surrogates (JSON's `\ud800`
    escapes to half a character), which no encoder can write back out."""
    # Iterative, so a hostile depth costs no recursion.
    stack: list[tuple[str, Any, int]] = [(key, value, 1) for key, value in variables.items()]
    while stack:
        where, value, depth = stack.pop()
        if depth > MAX_VARS_DEPTH:
            raise ValueError(
                f"{where} is nested deeper than {MAX_VARS_DEPTH} levels; flatten the structure"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where} is {value}, which JSON cannot hold; send a finite number")
        if isinstance(value, str) and not _storable(value):
            raise ValueError(
                f"{where} holds a NUL character or half of a UTF-16 pair, which cannot be stored"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or not _storable(key):
                    raise ValueError(
                        f"{where} has a key that is not text: a NUL character or half of a "
                        "UTF-16 pair"
                    )
                stack.append((f"{where}.{key[:64]}", item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value))


NodeName = Annotated[str, AfterValidator(check_node_name)]
Address = Annotated[str, AfterValidator(check_address)]
SshUser = Annotated[str, AfterValidator(_check_ssh_user)]
# Not strict: anything but a group or an alias then fails as "should be 'master' or 'worker'",
# not as "should be an instance of HostGroup".
HostGroupField = Annotated[HostGroup, Strict(False), BeforeValidator(_normalise_group)]
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
    host_group: HostGroupField = HostGroup.WORKER
    labels: Labels = Field(default_factory=dict)
    vars: Vars = Field(default_factory=dict)


class NodeUpdate(_Input):
    """A partial change; `labels` and `vars` replace the whole map."""

    address: Address | None = None
    ssh_port: SshPort | None = None
    ssh_user: SshUser | None = None
    host_group: HostGroupField | None = None
    labels: Labels | None = None
    vars: Vars | None = None


class MaintenanceChange(_Input):
    enabled: bool = Field(
        description="true: cordon the node (no new pods) and put it in maintenance; false: "
        "uncordon it and take it out"
    )
    drain: bool = Field(
        default=False,
        description="with enabled true: also drain the node (evict its pods, as kubectl drain)",
    )

    @field_validator("drain")
    @classmethod
    def _drain_only_on(cls, drain: bool, info: ValidationInfo) -> bool:
        # Checked here, not in a model validator, so that the error names the field "drain".
        if drain and info.data.get("enabled") is False:
            raise ValueError(
                "is for enabled true (cordon and drain); to take the node out of maintenance "
                'send {"enabled": false}'
            )
        return drain


class NodeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    address: str
    ssh_port: int
    ssh_user: str
    host_group: HostGroup
    labels: dict[str, str]
    vars: dict[str, Any]
    state: State
    created_at: dt.datetime
    updated_at: dt.datetime
    in_cluster: bool | None = Field(
        description="whether the cluster's Node list holds it at the last drift check; "
        "null before any check"
    )
    last_seen_at: dt.datetime | None
    missing_since: dt.datetime | None
