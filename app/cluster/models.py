"""The lead and the replicas, as stored: what every replica reads to know who does the work."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class Lease(Base):
    """One row (id 1): the replica that leads, until when, and the epoch of its lead.

    The epoch grows by one each time the lead changes hands; every write only the leader may
    make checks it in its own transaction (see app.cluster.leadership)."""

    __tablename__ = "cluster_lease"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder: Mapped[str | None] = mapped_column(sa.String(64))
    epoch: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # The database's clock, never a replica's: replicas' clocks may disagree.
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acquired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Replica(Base):
    """One row per replica that has run against this database, refreshed while it runs."""

    __tablename__ = "cluster_replica"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    advertise_url: Mapped[str] = mapped_column(sa.String(512))
    version: Mapped[str] = mapped_column(sa.String(32))
    # The newest migration this replica knows; a database past it is one it may not lead.
    schema: Mapped[str] = mapped_column(sa.String(64))
    hostname: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    role: Mapped[str] = mapped_column(sa.String(16))  # leader | follower | stopped
    role_since: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    can_lead: Mapped[bool] = mapped_column(default=True)
    note: Mapped[str | None] = mapped_column(sa.Text)  # why it cannot lead, or how it stopped
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class KnownHost(Base):
    """A line of SSH's known_hosts: the host keys every replica trusts (app.cluster.known_hosts)."""

    __tablename__ = "known_host"

    id: Mapped[int] = mapped_column(primary_key=True)
    # sha256 of the line: unique, where the line itself is too long for a unique index.
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    line: Mapped[str] = mapped_column(sa.Text)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
