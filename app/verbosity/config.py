"""What an administrator may configure about a component, and what a node may override.

Settings (admin-controlled, read at start-up) may change everything about how a component is
reached. A node's `vars.clusterm_verbosity` may change only its port and baseline level: node vars
travel through the API and into Ansible, so they must never be able to point clusterm at another
host, scheme or path (the address always comes from the node's inventory entry).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_LEVEL = 2147483647  # what klog accepts since Kubernetes 1.27 (docs/verbosity.md)
NODE_VAR = "clusterm_verbosity"

ComponentName = Literal[
    "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubelet", "kube-proxy"
]
HostGroup = Literal["master", "worker"]

_PATH_RE = re.compile(r"^(/[A-Za-z0-9_.~-]+)+$")


class ComponentConfig(BaseModel):
    """Overrides of one component's defaults (`verbosity_components` in the settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int | None = Field(default=None, ge=1, le=65535)
    scheme: Literal["http", "https"] | None = None
    path: str | None = Field(default=None, description="default /debug/flags/v")
    token_file: Path | None = Field(default=None, description="file holding a bearer token")
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle that signs its cert")
    insecure_skip_tls_verify: bool = Field(
        default=False, description="explicit opt-in: do not check the component's certificate"
    )
    baseline_level: int | None = Field(default=None, ge=0, le=MAX_LEVEL)
    host_groups: tuple[HostGroup, ...] | None = Field(
        default=None, description='the groups "all" selects; control plane default: master'
    )
    via_apiserver: bool = Field(
        default=False,
        description="kubelet only: go through the apiserver's nodes/{node}/proxy path",
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str | None) -> str | None:
        if path is not None and (not _PATH_RE.fullmatch(path) or "/../" in f"{path}/"):
            raise ValueError("must be an absolute URL path such as /debug/flags/v")
        return path

    @model_validator(mode="after")
    def _cert_and_key(self) -> ComponentConfig:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together: give both")
        return self


class NodeOverride(BaseModel):
    """What one node's `vars.clusterm_verbosity.<component>` may change."""

    model_config = ConfigDict(extra="forbid", strict=True)

    port: int | None = Field(default=None, ge=1, le=65535)
    baseline_level: int | None = Field(default=None, ge=0, le=MAX_LEVEL)


def check_components(value: dict[str, ComponentConfig]) -> dict[str, ComponentConfig]:
    for name, config in value.items():
        if config.via_apiserver and name != "kubelet":
            raise ValueError(f"{name}: via_apiserver is only for the kubelet")
    return value
