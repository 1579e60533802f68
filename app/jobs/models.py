"""Jobs and the global extra vars, as stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.ansible.spec import TASK_NAME_MAX, TaskStatus
from app.db import Base, JSONType, UTCDateTime, enum_column, utcnow
from app.jobs.vocabulary import Kind, Status
from app.nodes.vocabulary import HostGroup


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[Kind] = mapped_column(enum_column(Kind, 16))
    desc: Mapped[str] = mapped_column(sa.String(1024))
    # Node names, or the addresses of a discover job.
    nodes: Mapped[list[str]] = mapped_column(JSONType)
    host_group: Mapped[HostGroup | None] = mapped_column(enum_column(HostGroup, 16))
    actor: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[Status] = mapped_column(
        enum_column(Status, 16), default=Status.QUEUED, index=True
    )
    rc: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    hosts: Mapped[dict[str, dict[str, int]]] = mapped_column(JSONType, default=dict)
    # 1 while the job is queued or running, NULL after: a unique column allows many NULLs but
    # one 1, so the database itself refuses a second active job, whatever races the process has.
    active_slot: Mapped[int | None] = mapped_column(unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Whoever asked to cancel it, on any replica; the leader running it reads it here.
    cancel_requested_by: Mapped[str | None] = mapped_column(sa.String(64))
    # The replica that ran it, and the epoch of its lead (app.cluster.leadership).
    leader: Mapped[str | None] = mapped_column(sa.String(64))
    lease_epoch: Mapped[int | None] = mapped_column(sa.BigInteger)
    # What the request gave that the leader (any replica) needs to run the job: its extra vars
    # and a discover's addresses. Cleared when the job ends: the vars may hold secrets. JSON, not
    # JSONB: PostgreSQL keeps the text, so the vars' keys reach the playbook in the order sent.
    inputs: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))
    # A check job runs its playbook with --check --diff: it moves no node and changes nothing.
    # The server defaults let a replica that predates these columns (migration 0011) still
    # insert jobs during a rolling upgrade.
    check: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The request's --tags and --skip-tags, as declared by the kind's playbook (app.ansible.tags).
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=sa.text("'[]'"))
    skip_tags: Mapped[list[str]] = mapped_column(
        JSONType, default=list, server_default=sa.text("'[]'")
    )


class JobGlobals(Base):
    """One row (id 1): the global extra vars, between the settings' and a request's."""

    __tablename__ = "job_globals"

    id: Mapped[int] = mapped_column(primary_key=True)
    extra_vars: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_by: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobLog(Base):
    """Where a job's log stands, one row per job: what every replica serves it from.

    The log's shape is the log buffer's (app.ansible.logbuffer): a head kept for good, a gap, a
    sliding tail. The leader writes it in batches (app.jobs.logstore)."""

    __tablename__ = "job_log"

    job_id: Mapped[int] = mapped_column(
        sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True
    )
    next_line: Mapped[int] = mapped_column(default=1)
    # The number of head lines once the head is sealed (a line went to the tail), else None.
    head_lines: Mapped[int | None]
    tail_first: Mapped[int] = mapped_column(default=1)
    dropped_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    complete: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobLogChunk(Base):
    """Consecutive lines of a job's log, `first_line` to `last_line`, joined by newlines."""

    __tablename__ = "job_log_chunk"
    __table_args__ = (sa.Index("ix_job_log_chunk_job_id_last_line", "job_id", "last_line"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    first_line: Mapped[int]
    last_line: Mapped[int]
    text: Mapped[str] = mapped_column(sa.Text)


class JobHost(Base):
    """One host of a job: its counts (as Ansible's recap counts them, live while the job runs)
    and how many of its task results the job's bound left out (app.jobs.results)."""

    __tablename__ = "job_host"

    job_id: Mapped[int] = mapped_column(
        sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True
    )
    host: Mapped[str] = mapped_column(sa.String(253), primary_key=True)
    ok: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    unreachable: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    rescued: Mapped[int] = mapped_column(default=0)
    ignored: Mapped[int] = mapped_column(default=0)
    tasks_dropped: Mapped[int] = mapped_column(default=0)
    # False: the setting job_task_results was off, only failed tasks were stored.
    tasks_recorded: Mapped[bool] = mapped_column(default=True)


class JobTask(Base):
    """One task's end on one host of a job (app.jobs.results): never the task's arguments."""

    __tablename__ = "job_task"
    __table_args__ = (
        sa.Index("ix_job_task_job_id_host", "job_id", "host", "id"),
        sa.Index("ix_job_task_job_id_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(sa.String(253))
    run: Mapped[str] = mapped_column(sa.String(16))  # "main", or "cleanup" after a failure
    task: Mapped[str] = mapped_column(sa.String(TASK_NAME_MAX))
    role: Mapped[str | None] = mapped_column(sa.String(255))
    action: Mapped[str] = mapped_column(sa.String(255))
    status: Mapped[TaskStatus] = mapped_column(enum_column(TaskStatus, 16))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None]
    msg: Mapped[str | None] = mapped_column(sa.Text)
    rc: Mapped[int | None]
    stdout_tail: Mapped[str | None] = mapped_column(sa.Text)
    stderr_tail: Mapped[str | None] = mapped_column(sa.Text)
