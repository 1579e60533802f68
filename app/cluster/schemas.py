from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class ReplicaRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    advertise_url: str = Field(description="where other replicas and clients reach it")
    role: str = Field(description="leader, follower, stopped (gracefully) or gone (not seen)")
    since: dt.datetime = Field(description="in this role since")
    version: str
    schema_: str = Field(alias="schema", description="the newest migration it knows")
    alive: bool
    can_lead: bool
    note: str | None = Field(description="why it cannot lead, or how it stopped")
    started_at: dt.datetime
    seen_at: dt.datetime
    hostname: str
    pid: int


class ReplicasRead(BaseModel):
    leader: str | None = Field(description="the replica that leads now, if one does")
    answered_by: str = Field(description="the replica that answered this request")
    replicas: list[ReplicaRead]
