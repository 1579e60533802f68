"""Jobs: check mode and tags.

- `job.check`: the job ran its playbook with --check --diff (it moved no node, changed nothing);
- `job.tags`, `job.skip_tags`: the request's tags to run and to skip (JSON lists of names).

Only adds, with server defaults (false, []): a replica still on 0010 keeps inserting jobs, which
read back as ordinary jobs without tags (a rolling upgrade).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import JSONType

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(
            sa.Column("check", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("tags", JSONType, nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(
            sa.Column("skip_tags", JSONType, nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_column("skip_tags")
        batch.drop_column("tags")
        batch.drop_column("check")
