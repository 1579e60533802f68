"""Replicas: the lead and the replicas, and what they share through the database.

- `cluster_lease` (one row) and `cluster_replica`: who leads, and every replica seen;
- `job.cancel_requested_by`, `job.leader`, `job.lease_epoch`: a cancel asked on any replica, and
  which replica ran the job under which lead; `job.inputs`: what the request gave that the
  leader needs to run it (its extra vars, a discover's addresses), kept until the job ends;
- `job_log` and `job_log_chunk`: every job's log, in the database, served by every replica;
- `known_host`: the SSH host keys every replica trusts;
- `verbosity_lock`: the rows a verbosity operation locks, so two replicas never change one target
  at once;
- `drift_check`: checks asked for on any replica, run by the leader, read by all.

Every change adds: a replica still on 0007 keeps reading the tables it knows (a rolling upgrade).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import JSONType, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_lease",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("acquired_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_lease")),
    )
    op.execute("INSERT INTO cluster_lease (id, epoch) VALUES (1, 0)")
    op.create_table(
        "cluster_replica",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("advertise_url", sa.String(512), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("schema", sa.String(64), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("role_since", UTCDateTime(), nullable=False),
        sa.Column("can_lead", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_replica")),
    )
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("cancel_requested_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("leader", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_epoch", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("inputs", sa.JSON(), nullable=True))
    op.create_table(
        "job_log",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("next_line", sa.Integer(), nullable=False),
        sa.Column("head_lines", sa.Integer(), nullable=True),
        sa.Column("tail_first", sa.Integer(), nullable=False),
        sa.Column("dropped_bytes", sa.BigInteger(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_log_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_log")),
    )
    op.create_table(
        "job_log_chunk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("first_line", sa.Integer(), nullable=False),
        sa.Column("last_line", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_log_chunk_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_log_chunk")),
    )
    op.create_index("ix_job_log_chunk_job_id_last_line", "job_log_chunk", ["job_id", "last_line"])
    op.create_table(
        "known_host",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_host")),
        sa.UniqueConstraint("digest", name=op.f("uq_known_host_digest")),
    )
    op.create_table(
        "verbosity_lock",
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("node_name", sa.String(253), nullable=False),
        sa.PrimaryKeyConstraint("component", "node_name", name=op.f("pk_verbosity_lock")),
    )
    op.create_table(
        "drift_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=True),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("master", sa.String(253), nullable=True),
        sa.Column("missing", JSONType, nullable=False),
        sa.Column("remediation_jobs", JSONType, nullable=False),
        sa.Column("replica", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_check")),
    )
    op.create_index("ix_drift_check_status", "drift_check", ["status"])


def downgrade() -> None:
    op.drop_index("ix_drift_check_status", table_name="drift_check")
    op.drop_table("drift_check")
    op.drop_table("verbosity_lock")
    op.drop_table("known_host")
    op.drop_index("ix_job_log_chunk_job_id_last_line", table_name="job_log_chunk")
    op.drop_table("job_log_chunk")
    op.drop_table("job_log")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("inputs")
        batch.drop_column("lease_epoch")
        batch.drop_column("leader")
        batch.drop_column("cancel_requested_by")
    op.drop_table("cluster_replica")
    op.drop_table("cluster_lease")
