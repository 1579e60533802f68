"""Nodes: when each entered the cluster, so that the first master is the oldest commissioned one.

`node.commissioned_at` is set when a commission succeeds, kept while the node is updating or in
maintenance and cleared when it leaves the cluster. Nodes already in the cluster get the time of
their last successful commission on the timeline (an event from provisioning to commissioned);
where retention has purged it, their registration time, which never comes after the commission
and is what the drift watch ordered masters by before (`updated_at` would move with any later
change of the node, a label or a maintenance window, and make an old master look new).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IN_CLUSTER = ("commissioned", "updating", "maintenance")


def upgrade() -> None:
    with op.batch_alter_table("node") as batch:
        batch.add_column(sa.Column("commissioned_at", UTCDateTime(), nullable=True))
    node = sa.table(
        "node",
        sa.column("id", sa.Integer()),
        sa.column("state", sa.String()),
        sa.column("created_at", UTCDateTime()),
        sa.column("commissioned_at", UTCDateTime()),
    )
    event = sa.table(
        "timeline_event",
        sa.column("node_id", sa.Integer()),
        sa.column("from_state", sa.String()),
        sa.column("to_state", sa.String()),
        sa.column("occurred_at", UTCDateTime()),
    )
    # By node_id, not name: a name may have belonged to a node deleted and registered again.
    last_commission = (
        sa.select(sa.func.max(event.c.occurred_at))
        .where(
            event.c.node_id == node.c.id,
            event.c.from_state == "provisioning",
            event.c.to_state == "commissioned",
        )
        .scalar_subquery()
    )
    op.execute(
        node.update()
        .where(node.c.state.in_(IN_CLUSTER))
        .values(commissioned_at=sa.func.coalesce(last_commission, node.c.created_at))
    )


def downgrade() -> None:
    with op.batch_alter_table("node") as batch:
        batch.drop_column("commissioned_at")
