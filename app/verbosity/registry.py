"""The Kubernetes components whose verbosity clusterm changes, where each runs, how each is reached.

The defaults are Kubernetes' own (ports, schemes, `/debug/flags/v`, baseline V2); the settings
override them per component, and a node's `vars.clusterm_verbosity` overrides the port and
baseline per node. Where a request may go is decided here, and only here:

- The host is the node's inventory address, checked again with the node schema's address rule
  (a row stored before that rule was strict cannot slip through), or, for a kubelet reached
  through the apiserver, the apiserver node's. Nothing a request carries chooses it.
- The URL is built from its parts (scheme, host, port, path) and handed to httpx as that
  `httpx.URL`, never as a string httpx would parse again: a parse could read a host out of what
  was meant as a part of another one.
- A component is reached, and its credentials sent, only on a node of its `host_groups` (the
  control plane: masters) in a state where it may run (`REACHABLE_STATES`: neither `registered`,
  never provisioned, nor `decommissioned`). A failed or provisioning node stays reachable: it is
  the node support is debugging.
- The apiserver that relays kubelet calls (`via_apiserver`) is on a master in the cluster
  (`IN_CLUSTER`): the configured `verbosity_apiserver_node`, else the first master, the oldest
  commissioned (`nodes.first_master`, the rule jobs and the drift watch follow too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from app.config import ComponentConfig, Settings
from app.errors import NotFound
from app.nodes import service as nodes
from app.nodes.schemas import check_address
from app.nodes.service import NodeView
from app.nodes.vocabulary import HostGroup, State
from app.verbosity.config import NODE_VAR, NodeOverride

DEFAULT_PATH = "/debug/flags/v"
CONTROL_PLANE = (HostGroup.MASTER,)
EVERY_NODE = tuple(HostGroup)

REACHABLE_STATES = frozenset(
    {
        State.PROVISIONING,
        State.COMMISSIONED,
        State.UPDATING,
        State.MAINTENANCE,
        State.DECOMMISSIONING,
        State.FAILED,
    }
)
IN_CLUSTER = nodes.IN_CLUSTER
_STATE_WHY = {
    State.REGISTERED: "registered and never provisioned",
    State.DECOMMISSIONED: "decommissioned",
}


@dataclass(frozen=True)
class Component:
    name: str
    port: int
    scheme: str
    path: str = DEFAULT_PATH
    baseline_level: int = 2  # V2, the recommended default
    host_groups: tuple[HostGroup, ...] = EVERY_NODE
    token_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    ca_file: Path | None = None
    insecure_skip_tls_verify: bool = False
    via_apiserver: bool = False


DEFAULTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("kube-apiserver", 6443, "https", host_groups=CONTROL_PLANE),
        Component("kube-scheduler", 10259, "https", host_groups=CONTROL_PLANE),
        Component("kube-controller-manager", 10257, "https", host_groups=CONTROL_PLANE),
        Component("kubelet", 10250, "https"),
        # Plain HTTP and no authorization, as kube-proxy serves it (and only on 127.0.0.1 unless
        # its metricsBindAddress is changed).
        Component("kube-proxy", 10249, "http"),
    )
}


class ComponentNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"no component named {name[:64]!r}; clusterm knows {', '.join(DEFAULTS)}",
            component=name[:64],
        )


@dataclass(frozen=True)
class Target:
    """One component on one node, resolved to the URL clusterm will call (None: nowhere)."""

    component: str
    node: str
    url: httpx.URL | None
    baseline_level: int
    credentials: str  # the component whose credentials and TLS settings are used
    via: str | None = None  # the apiserver node, when the kubelet is reached through it
    problem: str | None = None  # why nothing can be sent (a bad node override, a bad address)
    # The node has left the inventory, or can no longer run the component, since clusterm
    # changed it: nothing is sent, and clusterm forgets the level.
    gone: bool = False
    # What a problem answers: 422 a row to correct, 409 a node (or relay) in the wrong state or
    # group, 404 a node deleted from the inventory.
    problem_status: int = 422

    @property
    def key(self) -> tuple[str, str]:
        return (self.component, self.node)

    @property
    def shown(self) -> str:
        """The URL for messages and logs (built from checked parts, so safe to print)."""
        return str(self.url) if self.url is not None else "(nowhere)"


def _merge(base: Component, config: ComponentConfig) -> Component:
    changes = {k: v for k, v in config.model_dump(exclude_unset=True).items() if v is not None}
    if "host_groups" in changes:
        changes["host_groups"] = tuple(changes["host_groups"])
    return Component(**{**base.__dict__, **changes})


def _node_override(node: NodeView, component: str) -> tuple[NodeOverride, str | None]:
    variables: Any = node.vars
    raw: Any = variables.get(NODE_VAR) if isinstance(variables, dict) else None
    if raw is None:
        return NodeOverride(), None
    where = f"node {node.name!r} var {NODE_VAR}"
    if not isinstance(raw, dict):
        return NodeOverride(), f"{where} must be an object keyed by component name"
    unknown = sorted(str(k)[:64] for k in set(raw) - set(DEFAULTS))
    if unknown:
        return NodeOverride(), f"{where} names unknown components {unknown}; known: " + ", ".join(
            DEFAULTS
        )
    try:
        return NodeOverride.model_validate(raw.get(component) or {}), None
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or component}: {e['msg']}" for e in exc.errors()
        )
        message = (
            f"{where}.{component} is not usable ({reasons}); only port and baseline_level may "
            "be set per node"
        )
        return NodeOverride(), message


def _groups(groups: tuple[str, ...]) -> str:
    return " and ".join(groups) + " nodes"


def _url(node: NodeView, *, scheme: str, port: int, path: str) -> httpx.URL:
    """The URL from its parts; ValueError names what is wrong with the node's address."""
    try:
        host = check_address(node.address)
    except ValueError as exc:
        raise ValueError(
            f"node {node.name!r} has the address {node.address[:64]!r}, which clusterm does not "
            f"connect to: it {exc}; correct it with PATCH /nodes/{node.name}"
        ) from None
    try:
        return httpx.URL(scheme=scheme, host=host, port=port, path=path)
    except httpx.InvalidURL as exc:
        raise ValueError(
            f"clusterm cannot build a URL to node {node.name!r} at {host!r}: {exc}"
        ) from None


class Registry:
    def __init__(self, settings: Settings) -> None:
        configured = settings.verbosity_components
        self.components = {
            name: _merge(base, ComponentConfig.model_validate(configured[name]))
            if name in configured
            else base
            for name, base in DEFAULTS.items()
        }
        self.apiserver_node = settings.verbosity_apiserver_node

    def get(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise ComponentNotFound(name) from None

    def unreachable(self, component: Component, node: NodeView) -> str | None:
        """Why `component` is not reached on `node` (its credentials never go there), or None."""
        if node.host_group not in component.host_groups:
            return (
                f"node {node.name!r} is a {node.host_group}, and {component.name} runs on "
                f"{_groups(component.host_groups)} only (host_groups)"
            )
        if node.state not in REACHABLE_STATES:
            why = _STATE_WHY.get(node.state, node.state)
            return f"node {node.name!r} is {why}: {component.name} cannot run there"
        return None

    def gone(self, component: str, node: str, reason: str | None = None) -> Target:
        """A target clusterm no longer sends to: the node was deleted (`reason` None), or it can
        no longer run the component (`reason` says why). Its level is forgotten."""
        base = self.components.get(component) or DEFAULTS["kubelet"]
        if reason is None:
            problem = f"node {node!r} is no longer in the inventory; clusterm forgets its level"
            status = 404
        else:
            problem = f"{reason}; nothing was sent, and clusterm forgets its level there"
            status = 409
        return Target(
            component, node, None, base.baseline_level, component, None, problem, True, status
        )

    def target(self, component: Component, node: NodeView, *, apiserver: NodeView | None) -> Target:
        reason = self.unreachable(component, node)
        if reason is not None:
            return self.gone(component.name, node.name, reason)
        override, problem = _node_override(node, component.name)
        baseline = (
            override.baseline_level
            if override.baseline_level is not None
            else component.baseline_level
        )

        def broken(why: str, *, credentials: str = component.name, status: int = 422) -> Target:
            return Target(
                component.name, node.name, None, baseline, credentials, None, why, False, status
            )

        if component.via_apiserver:
            api = self.components["kube-apiserver"]
            apiserver_or_why = self._relay(api, apiserver)
            if isinstance(apiserver_or_why, str):
                if problem:
                    return broken(problem, credentials=api.name)
                # No master in a state to relay: a conflict with the cluster's state (409).
                return broken(apiserver_or_why, credentials=api.name, status=409)
            apiserver = apiserver_or_why
            api_override, api_problem = _node_override(apiserver, api.name)
            try:
                url = _url(
                    apiserver,
                    scheme=api.scheme,
                    port=api_override.port or api.port,
                    path=f"/api/v1/nodes/{node.name}/proxy{component.path}",
                )
            except ValueError as exc:
                return broken(str(exc), credentials=api.name)
            return Target(
                component.name,
                node.name,
                url,
                baseline,
                api.name,
                apiserver.name,
                problem or api_problem,
            )
        try:
            url = _url(
                node,
                scheme=component.scheme,
                port=override.port or component.port,
                path=component.path,
            )
        except ValueError as exc:
            return broken(problem or str(exc))
        return Target(component.name, node.name, url, baseline, component.name, None, problem)

    def _relay(self, api: Component, apiserver: NodeView | None) -> NodeView | str:
        """The apiserver node that relays kubelet calls, or why there is none to use."""
        if apiserver is None:
            where = (
                f"verbosity_apiserver_node {self.apiserver_node!r} is not in the inventory"
                if self.apiserver_node
                else "there is no master in the cluster (commissioned, updating or maintenance)"
            )
            return (
                "the kubelet is set to be reached through the apiserver (via_apiserver), but "
                f"{where}; commission one or set verbosity_apiserver_node"
            )
        if apiserver.host_group not in api.host_groups or apiserver.state not in IN_CLUSTER:
            return (
                f"the kubelet is reached through the apiserver on {apiserver.name!r}, a "
                f"{apiserver.host_group} that is {apiserver.state}; kube-apiserver is reached "
                f"only on {_groups(api.host_groups)} in the cluster (commissioned, updating or "
                "maintenance): commission one or change verbosity_apiserver_node"
            )
        return apiserver
