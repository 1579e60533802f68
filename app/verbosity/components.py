"""The configured components as a support engineer and a cluster admin need to see them: where a
PUT goes, with whose credentials, and which Kubernetes right it needs.

Credentials are described by whether they are configured, never by their contents nor by the
path of the file that holds them (a path names a secret's home and is often enough to guess it).
"""

from __future__ import annotations

from app.verbosity.registry import Component, Registry
from app.verbosity.schemas import Authorization, ComponentRead

APISERVER = "kube-apiserver"
KUBELET = "kubelet"
# kube-proxy serves the flags endpoint without any authorization (see docs/contracts.md).
UNCHECKED = frozenset({"kube-proxy"})


def authorization(name: str) -> Authorization:
    if name in UNCHECKED:
        return Authorization.NONE
    if name == KUBELET:
        # A PUT on the kubelet, direct or relayed by the apiserver, is `update` on nodes/proxy.
        return Authorization.NODES_PROXY
    # The apiserver checks its own; the scheduler and the controller-manager delegate to it.
    return Authorization.NON_RESOURCE_URL


def _read(registry: Registry, component: Component) -> ComponentRead:
    if component.via_apiserver:
        api = registry.components[APISERVER]
        url = f"{api.scheme}://{{apiserver}}:{api.port}/api/v1/nodes/{{node}}/proxy{component.path}"
        credentials = api
    else:
        url = f"{component.scheme}://{{node}}:{component.port}{component.path}"
        credentials = component
    return ComponentRead(
        name=component.name,
        scheme=component.scheme,
        port=component.port,
        path=component.path,
        via_apiserver=component.via_apiserver,
        apiserver_node=registry.apiserver_node if component.via_apiserver else None,
        url=url,
        host_groups=list(component.host_groups),
        baseline_level=component.baseline_level,
        credentials_from=credentials.name,
        token=credentials.token_file is not None,
        client_cert=credentials.client_cert_file is not None,
        ca=credentials.ca_file is not None,
        insecure_skip_tls_verify=credentials.insecure_skip_tls_verify,
        authorization=authorization(component.name),
    )


def list_components(*, registry: Registry) -> list[ComponentRead]:
    return [_read(registry, c) for c in registry.components.values()]
