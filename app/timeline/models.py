"""The timeline's table.

`id` is the only order: server-assigned, increasing, never reused (SQLite AUTOINCREMENT; a
PostgreSQL sequence behind a commit-order lock, see `service.record_event`). Timestamps can tie or
step back with the clock; ids cannot, so paging and stream resumption key on them alone.

The node's name is copied into each row and the link to the node is `ON DELETE SET NULL`, so a
node's history outlives the node (as MAAS keeps `node_hostname`).

The timeline is a layer below the domains that write to it, the node inventory among them: it
links to the `node` table by its name in SQL (the foreign key, `NODE`), never through the nodes'
models, so that importing the timeline never imports a domain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, enum_column, utcnow
from app.timeline.vocabulary import Result, Severity

# The columns of the node table an event's link needs: its key and the name events copy.
NODE = sa.table("node", sa.column("id", sa.Integer()), sa.column("name", sa.String(253)))

# BIGINT on PostgreSQL; on SQLite only the exact type INTEGER makes the key the rowid.
EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class TimelineEvent(Base):
    __tablename__ = "timeline_event"
    __table_args__ = (
        # The node filter and per-node history page by (node_name, id); the job filter likewise.
        sa.Index("ix_timeline_event_node_name_id", "node_name", "id"),
        sa.Index("ix_timeline_event_job_id_id", "job_id", "id"),
        # "What did this token do": the console's and clusterctl's actor filter (migration 0010).
        sa.Index("ix_timeline_event_actor_id", "actor", "id"),
        # Deleting a node sets its events' node_id to NULL: without this index that is a full scan.
        sa.Index("ix_timeline_event_node_id", "node_id"),
        sa.Index("ix_timeline_event_occurred_at", "occurred_at"),
        # Retention counts and purges audit and other events separately (see retention).
        sa.Index("ix_timeline_event_audit_id", "audit", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    node_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("node.id", ondelete="SET NULL"), nullable=True
    )
    node_name: Mapped[str | None] = mapped_column(sa.String(253), nullable=True)
    action: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.String(64))
    result: Mapped[Result] = mapped_column(enum_column(Result, 16))
    severity: Mapped[Severity] = mapped_column(enum_column(Severity, 16))
    from_state: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    to_state: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    job_id: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    attempt: Mapped[int | None] = mapped_column(nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    actor: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    # Part of the audit trail (tokens, refusals, jobs accepted, verbosity): capped on its own.
    audit: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())


class TimelineRetention(Base):
    """One row: the highest id retention has ever purged.

    A stream cursor at or above it has lost nothing; one below it may have (per-node purges leave
    holes in the middle of history, so the oldest kept id alone cannot tell).
    """

    __tablename__ = "timeline_retention"

    id: Mapped[int] = mapped_column(primary_key=True)
    purged_through_id: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
