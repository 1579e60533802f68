"""Jobs and the global extra vars, as stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, enum_column, utcnow
from app.jobs.vocabulary import Kind, Status
from app.nodes.vocabulary import HostGroup


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[Kind] = mapped_column(enum_column(Kind, 16))
    desc: Mapped[str] = mapped_column(sa.String(1024))
    # Node names, or the addresses of a discover job.
    nodes: Mapped[list[str]] = mapped_column(JSONType)
    host_group: Mapped[HostGroup | None] = mapped_column(enum_column(HostGroup, 16))
    actor: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[Status] = mapped_column(
        enum_column(Status, 16), default=Status.QUEUED, index=True
    )
    rc: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    hosts: Mapped[dict[str, dict[str, int]]] = mapped_column(JSONType, default=dict)
    # 1 while the job is queued or running, NULL after: a unique column allows many NULLs but
    # one 1, so the database itself refuses a second active job, whatever races the process has.
    active_slot: Mapped[int | None] = mapped_column(unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class JobGlobals(Base):
    """One row (id 1): the global extra vars, between the settings' and a request's."""

    __tablename__ = "job_globals"

    id: Mapped[int] = mapped_column(primary_key=True)
    extra_vars: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_by: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
