"""Drift checks, as stored: asked for on any replica, run by the leader, read by every replica."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, utcnow


class DriftCheck(Base):
    __tablename__ = "drift_check"

    id: Mapped[int] = mapped_column(primary_key=True)
    # requested (waiting for the leader) | running | done
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    requested_by: Mapped[str | None] = mapped_column(sa.String(64))  # None: the interval's own
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(sa.String(16))  # checked | skipped | failed
    message: Mapped[str | None] = mapped_column(sa.Text)
    master: Mapped[str | None] = mapped_column(sa.String(253))
    missing: Mapped[list[str]] = mapped_column(JSONType, default=list)
    remediation_jobs: Mapped[list[int]] = mapped_column(JSONType, default=list)
    replica: Mapped[str | None] = mapped_column(sa.String(64))  # the leader that ran it
