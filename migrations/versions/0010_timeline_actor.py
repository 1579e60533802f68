"""An index for the timeline's actor filter: "what did this token do" answered from the index.

The console and `clusterctl timeline --actor` ask it newest first; without the index a token
with few events costs a pass over the whole table (about 110 ms at 1,000,000 events on SQLite,
170 ms on PostgreSQL; 0.1 ms with it). Only adds: a replica still on 0009 keeps working, though
on PostgreSQL its timeline writes wait while the index is built (a few seconds per million
events).

Not CREATE INDEX CONCURRENTLY: that waits for every transaction open in the database to end,
and replicas starting beside the migrating one wait for the migration lock inside one, so it
would never finish.

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
    op.create_index("ix_timeline_event_actor_id", "timeline_event", ["actor", "id"])


def downgrade() -> None:
    op.drop_index("ix_timeline_event_actor_id", table_name="timeline_event")
