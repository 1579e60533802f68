"""An index for the timeline's actor filter: "what did this token do" answered from the index.

The console and `clusterctl timeline --actor` ask it newest first; without the index a token
with few events costs a pass over the whole table (about 110 ms at 1,000,000 events on SQLite,
170 ms on PostgreSQL; 0.1 ms with it). Only adds: a replica still on 0009 keeps working. On
PostgreSQL the index is built CONCURRENTLY (outside a transaction): a plain CREATE INDEX would
hold up every replica's timeline writes while it reads millions of events.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_timeline_event_actor_id",
                "timeline_event",
                ["actor", "id"],
                postgresql_concurrently=True,
            )
    else:
        op.create_index("ix_timeline_event_actor_id", "timeline_event", ["actor", "id"])


def downgrade() -> None:
    op.drop_index("ix_timeline_event_actor_id", table_name="timeline_event")
