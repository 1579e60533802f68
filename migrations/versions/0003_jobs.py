"""Jobs: provisioning jobs and the global extra vars.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import JSONType, UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("desc", sa.String(1024), nullable=False),
        sa.Column("nodes", JSONType, nullable=False),
        sa.Column("host_group", sa.String(16), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rc", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("hosts", JSONType, nullable=False),
        sa.Column("active_slot", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("active_slot", name=op.f("uq_job_active_slot")),
    )
    op.create_index(op.f("ix_job_status"), "job", ["status"])
    op.create_table(
        "job_globals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("extra_vars", JSONType, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_globals")),
    )


def downgrade() -> None:
    op.drop_table("job_globals")
    op.drop_index(op.f("ix_job_status"), table_name="job")
    op.drop_table("job")
