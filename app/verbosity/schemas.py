"""Verbosity on the wire: a fan-out request, its per-node results, and the known levels."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from app.config import MAX_LEVEL
from app.nodes.schemas import NodeName
from app.nodes.vocabulary import HostGroup


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{name!r} is given twice (again at [{index}]); name each node once")
        seen.add(name)
    return names


class GroupSelection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Not strict: JSON gives a string, and strict would want a HostGroup instance.
    group: Annotated[HostGroup, Strict(False)]


NodeList = Annotated[list[NodeName], Field(min_length=1), AfterValidator(_unique)]
Selection = NodeList | Literal["all"] | GroupSelection


class VerbosityChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    component: str = Field(
        description="kube-apiserver, kube-scheduler, kube-controller-manager, "
        "kubelet or kube-proxy",
        max_length=64,
    )
    nodes: Selection = Field(description='node names, "all", or {"group": "master"|"worker"}')
    level: int = Field(ge=0, le=MAX_LEVEL)
    ttl: str | None = Field(
        default=None,
        max_length=32,
        description="revert after this long (90s, 15m, 1h30m); 0: never; default: the setting "
        "verbosity_default_ttl_s",
    )


class TargetResult(BaseModel):
    node: str
    component: str
    ok: bool
    status: int = Field(description="the component's HTTP status, or clusterm's (502, 504, 422)")
    message: str
    previous_level: int | None = Field(
        description="the level before: the one clusterm last set, else the baseline"
    )
    level: int


class SkippedNode(BaseModel):
    node: str
    reason: str


class ChangeReport(BaseModel):
    """200: every target succeeded; 207: some did; 502: none did."""

    component: str | None
    level: int | None
    ttl_seconds: int | None
    reverts_at: dt.datetime | None
    succeeded: int
    failed: int
    results: list[TargetResult]
    skipped: list[SkippedNode] = Field(
        default_factory=list,
        description='nodes "all" or a group left out, nothing sent: they cannot run the '
        "component (registered, never provisioned, or decommissioned; or outside its "
        "host_groups)",
    )


class LevelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    component: str
    node: str
    level: int
    previous_level: int | None
    baseline_level: int
    set_by: str
    set_at: dt.datetime
    revert_to: int | None
    reverts_at: dt.datetime | None
    revert_attempts: int
    last_error: str | None


class OwnLevelRead(BaseModel):
    level: int
    baseline_level: int
    set_by: str | None
    set_at: dt.datetime | None
    revert_to: int | None = Field(description="null with reverts_at: the start-up configuration")
    reverts_at: dt.datetime | None


class Authorization(StrEnum):
    """What Kubernetes checks before it lets a caller PUT the component's level."""

    NON_RESOURCE_URL = "non-resource-url"  # verb put on the URL (the control plane, delegated)
    NODES_PROXY = "nodes/proxy"  # verb update on nodes/proxy (the kubelet, direct or relayed)
    NONE = "none"  # kube-proxy checks nothing


class ComponentRead(BaseModel):
    """How clusterm reaches a component. Whether credentials are configured, never what they are
    nor where they are kept."""

    name: str
    scheme: str
    port: int
    path: str
    via_apiserver: bool
    apiserver_node: str | None = Field(
        description="via_apiserver: the master that relays (verbosity_apiserver_node); "
        "null: the first master"
    )
    url: str = Field(description="where a PUT goes, {node} (and {apiserver}) filled in per node")
    host_groups: list[HostGroup]
    baseline_level: int
    credentials_from: str = Field(
        description="whose token, client certificate and CA are used: the kube-apiserver's "
        "when the kubelet is reached through it"
    )
    token: bool
    client_cert: bool
    ca: bool
    insecure_skip_tls_verify: bool
    authorization: Authorization = Field(
        description="the Kubernetes right the caller needs (clusterctl verbosity rbac)"
    )
