"""A job's extra vars: who may send which, the global ones, and how the layers merge.

settings < globals < request, then clusterm's own on top. The leader merges them when it
claims the job (app.jobs.execution), so a globals change reaches every job not yet started.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app import operator_vars
from app.auth.vocabulary import Role
from app.db import utcnow
from app.jobs.models import Job, JobGlobals
from app.jobs.vocabulary import Kind
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity


def check_extra_vars(
    *, role: Role, extra_vars: dict[str, Any], declared: dict[str, operator_vars.VarSpec]
) -> None:
    """An admin may send any extra var; anyone else only the declared ones, each of its type
    (app.operator_vars). Called before a job is accepted: a refusal leaves nothing behind."""
    if role == Role.ADMIN:
        return
    operator_vars.check_operator_vars(extra_vars, declared=declared)


def get_globals(*, session: Session) -> JobGlobals:
    row = session.get(JobGlobals, 1)
    return row or JobGlobals(id=1, extra_vars={}, updated_by=None, updated_at=utcnow())


def set_globals(*, session: Session, extra_vars: dict[str, Any], actor: str) -> JobGlobals:
    row = session.get(JobGlobals, 1)
    if row is None:
        row = JobGlobals(id=1)
        session.add(row)
    before = set(row.extra_vars or {})
    row.extra_vars = extra_vars
    row.updated_by = actor
    row.updated_at = utcnow()
    # Keys only: values may be secrets.
    timeline.record_event(
        session=session,
        action="globals.set",
        reason="GlobalsChanged",
        result=Result.SUCCEEDED,
        severity=Severity.AUDIT,
        actor=actor,
        details={
            "added": sorted(set(extra_vars) - before),
            "removed": sorted(before - set(extra_vars)),
            "keys": sorted(extra_vars),
        },
    )
    return row


def merge_extra_vars(
    *,
    settings_vars: dict[str, Any],
    global_vars: dict[str, Any],
    request_vars: dict[str, Any],
    job: Job,
) -> dict[str, Any]:
    """settings < globals < request; clusterm's own on top, so a playbook can trust them: the
    job's id and kind, and a maintenance job's two from its request's body (never extra vars)."""
    own: dict[str, Any] = {"clusterm_job_id": job.id, "clusterm_job_kind": job.kind}
    if job.kind == Kind.MAINTENANCE:
        body = (job.inputs or {}).get("maintenance") or {}
        own["clusterm_maintenance"] = body.get("enabled") is True
        own["clusterm_maintenance_drain"] = body.get("drain") is True
    return {**settings_vars, **global_vars, **request_vars, **own}
