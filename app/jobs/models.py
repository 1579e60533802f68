"""Jobs and the global extra vars, as stored."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, utcnow


class Kind(StrEnum):
    COMMISSION = "commission"
    DECOMMISSION = "decommission"
    UPDATE = "update"
    DISCOVER = "discover"


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.RUNNING})


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    desc: Mapped[str] = mapped_column(sa.String(1024))
    # Node names, or the addresses of a discover job.
    nodes: Mapped[list[str]] = mapped_column(JSONType)
    host_group: Mapped[str | None] = mapped_column(sa.String(16))
    actor: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default=Status.QUEUED.value, index=True)
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
