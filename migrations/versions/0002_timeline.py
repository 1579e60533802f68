"""Timeline: the cluster's event history and retention's high-water mark.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import JSONType, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "timeline_event",
        sa.Column("id", EventId, autoincrement=True, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("node_name", sa.String(253), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("details", JSONType, nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["node.id"],
            name=op.f("fk_timeline_event_node_id_node"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_event")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_timeline_event_node_name_id", "timeline_event", ["node_name", "id"])
    op.create_index("ix_timeline_event_job_id_id", "timeline_event", ["job_id", "id"])
    op.create_index("ix_timeline_event_node_id", "timeline_event", ["node_id"])
    op.create_index("ix_timeline_event_occurred_at", "timeline_event", ["occurred_at"])
    op.create_table(
        "timeline_retention",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purged_through_id", sa.BigInteger(), nullable=False),
        sa.Column("purged_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_retention")),
    )
    op.execute("INSERT INTO timeline_retention (id, purged_through_id) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("timeline_retention")
    op.drop_index("ix_timeline_event_occurred_at", table_name="timeline_event")
    op.drop_index("ix_timeline_event_node_id", table_name="timeline_event")
    op.drop_index("ix_timeline_event_job_id_id", table_name="timeline_event")
    op.drop_index("ix_timeline_event_node_name_id", table_name="timeline_event")
    op.drop_table("timeline_event")
