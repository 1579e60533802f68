"""Jobs on the wire: the requests (validated before any job exists) and the replies."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from app.ansible import tags as ansible_tags
from app.ansible.inventory import Address
from app.jobs.vocabulary import Kind, Status
from app.nodes.schemas import Address as NodeAddress
from app.nodes.schemas import HostGroupField, NodeName, SshUser, Vars
from app.nodes.vocabulary import HostGroup

MAX_NODES = 1000


def _json_object(value: Any) -> Any:
    # The original clusterm took extra_vars as a JSON *string*; scripts still send one
    # (see docs/contracts.md#contiv-clusterm).
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            # RecursionError: nesting deeper than the parser can follow (vars are limited to
            # far less anyway).
            raise ValueError("must be a JSON object; this string is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, not {type(value).__name__}")
    return value


ExtraVars = Annotated[Vars, BeforeValidator(_json_object)]
# Which of them a caller may send depends on the caller's role (app.operator_vars): checked by
# variables.check_extra_vars before a job is accepted.
_REQUEST_VARS: Any = Field(
    default_factory=dict,
    description="Ansible extra vars, passed to the playbook as data (never templated). An "
    "operator may send only the declared ones: the timing and retry knobs (integers within "
    "bounds) and the setting operator_extra_vars; an admin may send any.",
)
_address = TypeAdapter(NodeAddress)


def split_target(value: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port` -> (host, port)."""
    host, port = value, 22
    if value.startswith("["):
        inner, _, rest = value[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError("write an IPv6 address with a port as [ADDRESS]:PORT")
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, text = value.partition(":")
        if not text.isdigit():
            raise ValueError(f"port {text!r} is not a number")
        port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    try:
        _address.validate_python(host)
    except ValueError:
        raise ValueError(f"{host!r} is neither an IP address nor a valid DNS name") from None
    return host, port


def _check_target(value: str) -> str:
    split_target(value)
    return value


def to_addresses(targets: list[str], user: str) -> list[Address]:
    out = []
    for target in targets:
        host, port = split_target(target)
        out.append(Address(host=host, port=port, user=user))
    return out


NodeList = Annotated[list[NodeName], Field(min_length=1, max_length=MAX_NODES)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _tag_name(value: str) -> str:
    problem = ansible_tags.name_problem(value)
    if problem is not None:
        raise ValueError(f"{problem} (docs/jobs.md lists the playbooks' tags)")
    return value


TagName = Annotated[str, AfterValidator(_tag_name)]


class _RunOptions(_Input):
    """How the kind's playbook runs: in check mode, and which of its tagged steps."""

    check: bool = Field(
        default=False,
        description="Check mode: run the playbook with --check --diff. Nothing is changed on the "
        "nodes and no node changes state; the job (marked check) says per host what would "
        "change: GET /jobs/{id} (would_change) and GET /jobs/{id}/hosts. Refused (409) as the "
        "real job would be when a node is not in a state the job starts from.",
    )
    tags: list[TagName] = Field(
        default_factory=list,
        max_length=ansible_tags.TAGS_MAX,
        description="Run only the steps with these tags (ansible-playbook --tags). Each must be a "
        "tag the kind's playbook declares (a 422 lists them). The node's name check, the verified "
        "join and the cordon/drain around a change run whatever the tags: Ansible's special tags "
        "(always, never, all, tagged, untagged) are refused.",
    )
    skip_tags: list[TagName] = Field(
        default_factory=list,
        max_length=ansible_tags.TAGS_MAX,
        description="Skip the steps with these tags (ansible-playbook --skip-tags); the same "
        "names and rules as tags: what carries the tag always cannot be skipped.",
    )


class CommissionRequest(_RunOptions):
    nodes: NodeList
    host_group: HostGroupField | None = None
    extra_vars: ExtraVars = _REQUEST_VARS
    cleanup: bool = Field(
        default=True,
        description="Run the cleanup playbook on the nodes the commission leaves failed: when it "
        "fails, is cancelled or times out. false leaves them as they are, to look at; clean them "
        "up later with POST /cleanup/nodes.",
    )


class DecommissionRequest(_RunOptions):
    nodes: NodeList
    extra_vars: ExtraVars = _REQUEST_VARS


class UpdateRequest(_RunOptions):
    nodes: NodeList
    host_group: HostGroupField | None = None
    extra_vars: ExtraVars = _REQUEST_VARS


class CleanupRequest(_Input):
    nodes: NodeList
    extra_vars: ExtraVars = _REQUEST_VARS


class DiscoverRequest(_Input):
    addrs: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=260), AfterValidator(_check_target)]],
        Field(min_length=1, max_length=MAX_NODES, description="ADDRESS or ADDRESS:PORT"),
    ]
    ssh_user: SshUser = "root"
    extra_vars: ExtraVars = _REQUEST_VARS


class GlobalsBody(_Input):
    extra_vars: ExtraVars


class GlobalsRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    extra_vars: dict[str, Any]
    updated_by: str | None
    updated_at: dt.datetime


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: Kind
    desc: str
    nodes: list[str]
    host_group: HostGroup | None
    actor: str
    status: Status
    rc: int | None
    error: str | None
    hosts: dict[str, dict[str, int]]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    check: bool = Field(
        default=False, description="a check job: --check --diff, nothing changed, no node moved"
    )
    tags: list[str] = Field(default_factory=list, description="the steps it ran only (--tags)")
    skip_tags: list[str] = Field(default_factory=list, description="the steps it skipped")
    would_change: dict[str, list[str]] | None = Field(
        default=None,
        description="GET /jobs/{id} of a check job that has ended: per host, the names of the "
        "tasks that would change something (empty: nothing to change); null elsewhere. Per task "
        "at GET /jobs/{id}/hosts/{host}; null too once the job's results are no longer kept.",
    )
