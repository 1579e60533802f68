"""The extra vars an operator may send with a job, each declared with its type and bounds.

Placeholder created with the settings; the declarations and the check live here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VarSpec(BaseModel):
    """How one operator-settable extra var is typed (`operator_extra_vars` in the settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int", "bool", "str"]
    min: int | None = Field(default=None, description="int: smallest value allowed")
    max: int | None = Field(default=None, description="int: largest value allowed")
    max_length: int = Field(default=256, ge=1, le=4096, description="str: longest value")
