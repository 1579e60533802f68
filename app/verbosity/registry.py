"""The Kubernetes components whose verbosity clusterm changes, and how each is reached.

Defaults come from REFERENCE.md §2; the settings override them per component, and a node's
`vars.clusterm_verbosity` overrides the port and baseline per node. A target's host is always the
node's inventory address (or, for a kubelet reached through the apiserver, the apiserver node's):
nothing a request carries can choose where clusterm connects. That is the SSRF boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from app.config import Settings
from app.errors import NotFound
from app.nodes.models import Node
from app.verbosity.config import NODE_VAR, ComponentConfig, NodeOverride

DEFAULT_PATH = "/debug/flags/v"
CONTROL_PLANE = ("master",)
EVERY_NODE = ("master", "worker")


@dataclass(frozen=True)
class Component:
    name: str
    port: int
    scheme: str
    path: str = DEFAULT_PATH
    baseline_level: int = 2  # V2, the recommended default
    host_groups: tuple[str, ...] = EVERY_NODE
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
    """One component on one node, resolved to the URL clusterm will call."""

    component: str
    node: str
    url: str
    baseline_level: int
    credentials: str  # the component whose credentials and TLS settings are used
    via: str | None = None  # the apiserver node, when the kubelet is reached through it
    problem: str | None = None  # why nothing can be sent (a bad node override)
    gone: bool = False  # the node has left the inventory since clusterm changed it

    @property
    def key(self) -> tuple[str, str]:
        return (self.component, self.node)


def _merge(base: Component, config: ComponentConfig) -> Component:
    changes = {k: v for k, v in config.model_dump(exclude_unset=True).items() if v is not None}
    if "host_groups" in changes:
        changes["host_groups"] = tuple(changes["host_groups"])
    return Component(**{**base.__dict__, **changes})


def _node_override(node: Node, component: str) -> tuple[NodeOverride, str | None]:
    raw: Any = (node.vars or {}).get(NODE_VAR)
    if raw is None:
        return NodeOverride(), None
    where = f"node {node.name!r} var {NODE_VAR}"
    if not isinstance(raw, dict):
        return NodeOverride(), f"{where} must be an object keyed by component name"
    unknown = sorted(set(raw) - set(DEFAULTS))
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

    def gone(self, component: str, node: str) -> Target:
        """A target whose node has been deleted: nothing can be sent to it any more."""
        base = self.components.get(component) or DEFAULTS["kubelet"]
        problem = f"node {node!r} is no longer in the inventory; clusterm forgets its level"
        return Target(component, node, "", base.baseline_level, component, None, problem, True)

    def target(self, component: Component, node: Node, *, apiserver: Node | None) -> Target:
        override, problem = _node_override(node, component.name)
        baseline = (
            override.baseline_level
            if override.baseline_level is not None
            else component.baseline_level
        )
        if component.via_apiserver:
            api = self.components["kube-apiserver"]
            if apiserver is None:
                problem = problem or (
                    "the kubelet is set to be reached through the apiserver (via_apiserver), "
                    "but there is no master node to reach it on; register one or set "
                    "verbosity_apiserver_node"
                )
                return Target(component.name, node.name, "", baseline, api.name, None, problem)
            api_override, api_problem = _node_override(apiserver, api.name)
            url = httpx.URL(
                scheme=api.scheme,
                host=apiserver.address,
                port=api_override.port or api.port,
                path=f"/api/v1/nodes/{node.name}/proxy{component.path}",
            )
            return Target(
                component.name,
                node.name,
                str(url),
                baseline,
                api.name,
                apiserver.name,
                problem or api_problem,
            )
        url = httpx.URL(
            scheme=component.scheme,
            host=node.address,
            port=override.port or component.port,
            path=component.path,
        )
        return Target(component.name, node.name, str(url), baseline, component.name, None, problem)
