"""A job's per-host results as `/jobs/{id}/hosts` shows them (app.jobs.results stores them)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.ansible.spec import TaskStatus
from app.errors import Gone, NotFound
from app.jobs import service as jobs
from app.jobs.models import Job, JobHost, JobLog, JobTask
from app.jobs.results import COUNTS
from app.jobs.views import job_view
from app.jobs.vocabulary import ACTIVE_STATUSES

PROBLEMS = ("failed", "unreachable")


def would_change(*, session: Session, job: Job) -> dict[str, list[str]] | None:
    """A check job's hosts, each with the names of the tasks that reported `changed` (they would
    change something), in the order they ran; an empty list: nothing to change. None for a job
    that is no check, or whose results are no longer kept (the recap's counts stay in `hosts`)."""
    if not job.check:
        return None
    if job.status not in ACTIVE_STATUSES and session.get(JobLog, job.id) is None:
        return None
    rows = session.execute(
        sa.select(JobTask.host, JobTask.task)
        .where(
            JobTask.job_id == job.id,
            JobTask.run == "main",
            JobTask.status == TaskStatus.CHANGED,
        )
        .order_by(JobTask.id)
    ).all()
    found: dict[str, list[str]] = {host: [] for host in job.hosts}
    for host, task in rows:
        names = found.setdefault(host, [])
        if task not in names:  # a task that ran twice (an include in a loop) is named once
            names.append(task)
    return dict(sorted(found.items()))


def task_view(task: JobTask, *, full: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "host": task.host,
        "run": task.run,
        "task": task.task,
        "role": task.role,
        "action": task.action,
        "status": task.status.value,
        "started_at": task.started_at.isoformat() if task.started_at else None,
        "duration_ms": task.duration_ms,
    }
    if full or task.msg or task.rc is not None or task.stdout_tail or task.stderr_tail:
        view.update(
            msg=task.msg, rc=task.rc, stdout_tail=task.stdout_tail, stderr_tail=task.stderr_tail
        )
    return view


def _host_view(row: JobHost) -> dict[str, Any]:
    return {
        "host": row.host,
        **{k: getattr(row, k) for k in COUNTS},
        "tasks_dropped": row.tasks_dropped,
        "tasks_recorded": row.tasks_recorded,
    }


def _job(session: Session, job_id: int, kept: int) -> Job:
    job = jobs.get_job(session=session, job_id=job_id)
    if job.status not in ACTIVE_STATUSES and session.get(JobLog, job_id) is None:
        raise Gone(
            f"the results of job {job_id} are no longer kept: only the newest job_dirs_kept "
            f"({kept}) jobs keep their log and per-host results (raise the setting "
            f"job_dirs_kept to keep more); GET /jobs/{job_id} still has its recap",
            job_id=job_id,
        )
    return job


def list_hosts(*, session: Session, job_id: int, kept: int) -> dict[str, Any]:
    """Every host of the job with its counts and its failed and unreachable tasks."""
    job = _job(session, job_id, kept)
    rows = session.scalars(
        sa.select(JobHost).where(JobHost.job_id == job_id).order_by(JobHost.host)
    ).all()
    problems = session.scalars(
        sa.select(JobTask)
        .where(JobTask.job_id == job_id, JobTask.status.in_(PROBLEMS))
        .order_by(JobTask.id)
    ).all()
    by_host: dict[str, list[dict[str, Any]]] = {}
    for task in problems:
        by_host.setdefault(task.host, []).append(task_view(task, full=True))
    hosts = [_host_view(r) | {"failed_tasks": by_host.get(r.host, [])} for r in rows]
    changes = would_change(session=session, job=job)
    if changes is not None:
        for host in hosts:
            host["would_change"] = changes.get(host["host"], [])
    return {"job": _summary(job), "hosts": hosts}


def get_host(*, session: Session, job_id: int, host: str, kept: int) -> dict[str, Any]:
    """One host of the job with every task it ran (in order)."""
    job = _job(session, job_id, kept)
    # No host has a control character in its name (PostgreSQL would refuse a NUL in the query
    # with an error of its own): such a name is simply not found.
    known = host.isprintable()
    row = session.get(JobHost, (job_id, host)) if known else None
    if row is None:
        still = " yet (the job is still running)" if job.status in ACTIVE_STATUSES else ""
        raise NotFound(
            f"job {job_id} has no result for host {host[:253]!r}{still}; its hosts are listed at "
            f"GET /jobs/{job_id}/hosts",
            job_id=job_id,
            host=host,
        )
    tasks = session.scalars(
        sa.select(JobTask)
        .where(JobTask.job_id == job_id, JobTask.host == host)
        .order_by(JobTask.id)
    ).all()
    return {
        "job": _summary(job),
        **_host_view(row),
        "tasks": [task_view(t, full=False) for t in tasks],
    }


def _summary(job: Job) -> dict[str, Any]:
    view = job_view(job)
    return {k: view[k] for k in ("id", "kind", "status", "desc", "error", "check")}
