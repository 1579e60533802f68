"""What a node may override about a component it runs.

Settings (admin-controlled, read at start-up: `app.config.ComponentConfig`) may change everything
about how a component is reached. A node's `vars.clusterm_verbosity` may change only its port and
baseline level: node vars travel through the API and into Ansible, so they must never be able to
point clusterm at another host, scheme or path (the address always comes from the node's inventory
entry).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.config import MAX_LEVEL

NODE_VAR = "clusterm_verbosity"


class NodeOverride(BaseModel):
    """What one node's `vars.clusterm_verbosity.<component>` may change."""

    model_config = ConfigDict(extra="forbid", strict=True)

    port: int | None = Field(default=None, ge=1, le=65535)
    baseline_level: int | None = Field(default=None, ge=0, le=MAX_LEVEL)
