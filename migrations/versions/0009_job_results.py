"""Job results: per host and per task, what each job did (app.jobs.results).

- `job_host`: per job and host, the counts of the recap (ok, changed, failed, unreachable,
  skipped, rescued, ignored), how many task results the job's bound left out, and whether every
  task was recorded or only the failed ones (the setting job_task_results);
- `job_task`: per task and host, its status, start, duration, and for a failure its message,
  return code and the tails of its stdout and stderr. Never its arguments.

Both only add: a replica still on 0008 keeps working (a rolling upgrade).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_host",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("unreachable", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("rescued", sa.Integer(), nullable=False),
        sa.Column("ignored", sa.Integer(), nullable=False),
        sa.Column("tasks_dropped", sa.Integer(), nullable=False),
        sa.Column("tasks_recorded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_host_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "host", name=op.f("pk_job_host")),
    )
    op.create_table(
        "job_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("run", sa.String(16), nullable=False),
        sa.Column("task", sa.String(512), nullable=False),
        sa.Column("role", sa.String(255), nullable=True),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("msg", sa.Text(), nullable=True),
        sa.Column("rc", sa.Integer(), nullable=True),
        sa.Column("stdout_tail", sa.Text(), nullable=True),
        sa.Column("stderr_tail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_task_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_task")),
    )
    op.create_index("ix_job_task_job_id_host", "job_task", ["job_id", "host", "id"])
    op.create_index("ix_job_task_job_id_status", "job_task", ["job_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_job_task_job_id_status", table_name="job_task")
    op.drop_index("ix_job_task_job_id_host", table_name="job_task")
    op.drop_table("job_task")
    op.drop_table("job_host")
