"""The replicas as stored: each registers at start-up, refreshes its row while it runs (the lease
thread does, every second or so) and marks it stopped at a graceful stop. GET /cluster/replicas
lists them."""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.cluster.models import Replica
from app.db import UTCDateTime, utcnow

LEADER, FOLLOWER, STOPPED, GONE = "leader", "follower", "stopped", "gone"
# A replica not seen for this many lease lengths is shown as gone.
GONE_AFTER_TTLS = 2
# Rows of replicas stopped or gone longer than this are dropped: the list shows the living.
FORGET_AFTER = dt.timedelta(days=7)


def db_now(session: Session) -> dt.datetime:
    """The database's clock on PostgreSQL, where replicas compare times; SQLite has one process."""
    if session.get_bind().dialect.name == "postgresql":
        clock = sa.func.clock_timestamp(type_=UTCDateTime())
        now: dt.datetime = session.execute(sa.select(clock)).scalar_one()
        return now
    return utcnow()


@dataclass(frozen=True)
class Identity:
    replica_id: str
    advertise_url: str
    version: str
    schema: str

    @property
    def hostname(self) -> str:
        return socket.gethostname()[:255]


def register(session: Session, *, me: Identity, role: str, note: str | None) -> None:
    """Insert or refresh this replica's row at start-up (a restarted replica keeps its id)."""
    now = db_now(session)
    row = session.get(Replica, me.replica_id)
    if row is None:
        row = Replica(id=me.replica_id)
        session.add(row)
    row.advertise_url = me.advertise_url
    row.version = me.version
    row.schema = me.schema
    row.hostname = me.hostname
    row.pid = os.getpid()
    row.role = role
    row.role_since = row.started_at = row.seen_at = now
    row.can_lead = note is None
    row.note = note
    session.execute(
        sa.delete(Replica).where(Replica.id != me.replica_id, Replica.seen_at < now - FORGET_AFTER)
    )


def heartbeat(conn: sa.Connection, *, replica_id: str, role: str, note: str | None) -> None:
    now = sa.func.clock_timestamp()
    conn.execute(
        sa.update(Replica)
        .where(Replica.id == replica_id)
        .values(
            seen_at=now,
            role_since=sa.case((Replica.role == role, Replica.role_since), else_=now),
            role=role,
            can_lead=note is None,
            note=note,
        )
    )


def mark_stopped(session: Session, *, replica_id: str) -> None:
    now = db_now(session)
    session.execute(
        sa.update(Replica)
        .where(Replica.id == replica_id)
        .values(
            # Marked twice when a leader stops (with the lease let go, then by the runtime): the
            # first time counts.
            role_since=sa.case((Replica.role == STOPPED, Replica.role_since), else_=now),
            role=STOPPED,
            seen_at=now,
            note="stopped",  # a graceful stop: nothing more to say
        )
    )


def why_lead_passed(
    conn: sa.Connection, *, previous: str | None, expired_at: dt.datetime | None, now: dt.datetime
) -> str:
    """Why the lead is free, for the timeline: first lead, a graceful handover, or a lease that
    ran out (its holder stopped renewing: killed, cut off, or stalled)."""
    if previous is None:
        return "no replica had led this database before"
    role = conn.scalar(sa.select(Replica.role).where(Replica.id == previous))
    if role == STOPPED:
        return f"{previous} handed the lead over as it stopped"
    since = ""
    if expired_at is not None:
        since = f" {(now - expired_at).total_seconds():.1f} s ago"
    return (
        f"the lease of {previous} ran out{since}: it stopped renewing it (killed, cut off "
        "from the database, or stalled)"
    )


@dataclass(frozen=True)
class ReplicaView:
    id: str
    advertise_url: str
    role: str
    since: dt.datetime
    version: str
    schema: str
    alive: bool
    can_lead: bool
    note: str | None
    started_at: dt.datetime
    seen_at: dt.datetime
    hostname: str
    pid: int


def list_replicas(
    session: Session, *, ttl_s: float, leader: str | None, me: str
) -> list[ReplicaView]:
    """Every replica known, the leader first, then by id. `me` is the replica asking: on SQLite,
    where nobody refreshes a row, it is alive as long as it answers."""
    now = db_now(session)
    stale = now - dt.timedelta(seconds=ttl_s * GONE_AFTER_TTLS)
    views = []
    for row in session.scalars(sa.select(Replica)):
        alive = row.role != STOPPED and (row.seen_at > stale or row.id == me)
        role = row.role if alive or row.role == STOPPED else GONE
        if row.id == leader:
            role = LEADER
        elif row.role == LEADER:  # its row lags behind the lease: it lost the lead
            role = FOLLOWER if alive else GONE
        views.append(
            ReplicaView(
                id=row.id,
                advertise_url=row.advertise_url,
                role=role,
                since=row.role_since,
                version=row.version,
                schema=row.schema,
                alive=alive,
                can_lead=row.can_lead,
                note=row.note,
                started_at=row.started_at,
                seen_at=now if row.id == me else row.seen_at,  # it answers: seen now
                hostname=row.hostname,
                pid=row.pid,
            )
        )
    views.sort(key=lambda v: (v.id != leader, v.role in (STOPPED, GONE), v.id))
    return views
