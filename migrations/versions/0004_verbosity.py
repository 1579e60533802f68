"""Verbosity: the levels clusterm has set on Kubernetes components, and their pending reverts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verbosity_level",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("node_name", sa.String(253), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("previous_level", sa.Integer(), nullable=True),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.Column("revert_to", sa.Integer(), nullable=True),
        sa.Column("revert_at", UTCDateTime(), nullable=True),
        sa.Column("revert_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verbosity_level")),
        sa.UniqueConstraint("component", "node_name", name=op.f("uq_verbosity_level_component")),
    )
    op.create_index("ix_verbosity_level_revert_at", "verbosity_level", ["revert_at"])


def downgrade() -> None:
    op.drop_index("ix_verbosity_level_revert_at", table_name="verbosity_level")
    op.drop_table("verbosity_level")
