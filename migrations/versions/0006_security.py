"""Security: audit events get their own retention cap, and tokens may expire.

`timeline_event.audit` marks the events of the audit trail (tokens, refused requests, jobs
accepted, verbosity changes): retention caps them separately, so a flood of one kind never erases
the other. Existing rows are classified by the same rule the code uses (see docs/security.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ALTER TABLE, not a batch: on SQLite a batch would recreate the table, copying every
    # event and dropping its AUTOINCREMENT and sqlite_sequence row (event ids must never be reused).
    op.add_column(
        "timeline_event",
        sa.Column("audit", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    event = sa.table(
        "timeline_event",
        sa.column("audit", sa.Boolean()),
        sa.column("action", sa.String()),
        sa.column("reason", sa.String()),
        sa.column("severity", sa.String()),
    )
    op.execute(
        event.update()
        .where(
            sa.or_(
                event.c.severity == "audit",
                event.c.action.in_(["token", "authorize", "verbosity", "globals.set"]),
                event.c.reason == "JobAccepted",
            )
        )
        .values(audit=True)
    )
    op.create_index("ix_timeline_event_audit_id", "timeline_event", ["audit", "id"])
    with op.batch_alter_table("token") as batch:
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("token") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_timeline_event_audit_id", table_name="timeline_event")
    with op.batch_alter_table(
        "timeline_event", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.drop_column("audit")
