"""How a job ends: its row finished, and each of its nodes settled by its own host's result.

Written once per job, by the leader that ran it (`finish_job`, in a fenced transaction) or by a
new leader for a job nobody drives any more (`interrupt_abandoned`). A node's *_succeed or *_fail
event is chosen from its host's line of Ansible's recap; a node an update or decommission never
reached (its rollout stopped before the node's batch) goes back to the state it had before the job
(lifecycle.UNTOUCHED); a maintenance job moves its node only when it succeeded; a check job moves
no node at all and records what it would change.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import Conflict
from app.jobs import results
from app.jobs.models import Job
from app.jobs.results import HostFailure
from app.jobs.service import (
    DESC_SHOWN,
    EVENTS,
    STATES_BEFORE,
    get_job,
    maintenance_event,
    run_options,
    with_run_options,
)
from app.jobs.vocabulary import Kind, Status
from app.nodes import service as nodes
from app.nodes.service import NodeView
from app.nodes.vocabulary import Event, State
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity

_RESULT = {
    Status.SUCCESSFUL: Result.SUCCEEDED,
    Status.FAILED: Result.FAILED,
    Status.TIMEOUT: Result.FAILED,
    Status.CANCELED: Result.CANCELED,
    Status.INTERRUPTED: Result.INTERRUPTED,
}


def host_succeeded(hosts: dict[str, dict[str, int]], name: str, *, status: Status) -> bool:
    """A host succeeded when it neither failed nor was unreachable; one Ansible never reached
    counts as succeeded only when the whole run did (it had nothing to do)."""
    if status in (Status.CANCELED, Status.TIMEOUT, Status.INTERRUPTED):
        return False
    counts = hosts.get(name)
    if counts is None:
        return status == Status.SUCCESSFUL
    return counts.get("failed", 0) == 0 and counts.get("unreachable", 0) == 0


def finish_job(
    *,
    session: Session,
    job_id: int,
    status: Status,
    rc: int | None,
    hosts: dict[str, dict[str, int]],
    error: str | None,
    failures: Mapping[str, HostFailure] | None = None,
    untouched: Collection[str] = (),
) -> Job:
    """Record the end of a job and move each of its nodes by its own host's result;
    `failures` says why a host failed (app.jobs.results), else how the job ended does.
    `untouched`: nodes the job never reached (`not_touched`): back to their state before it."""
    job = get_job(session=session, job_id=job_id)
    inputs = job.inputs or {}
    job.status = status
    job.rc = rc
    job.hosts = hosts
    job.error = error
    job.finished_at = utcnow()
    job.active_slot = None
    job.inputs = None  # the request's vars may hold secrets: they go with the job's end
    duration_ms = None
    if job.started_at is not None:
        duration_ms = int((job.finished_at - job.started_at).total_seconds() * 1000)
    if job.kind != Kind.DISCOVER and job.check:
        _record_checked(session=session, job=job, status=status, failures=failures or {})
    elif job.kind == Kind.MAINTENANCE:
        _settle_maintenance(
            session=session, job=job, status=status, failures=failures or {}, inputs=inputs
        )
    elif job.kind != Kind.DISCOVER:
        _settle_nodes(
            session=session,
            job=job,
            status=status,
            failures=failures or {},
            untouched=untouched,
            before=inputs.get(STATES_BEFORE) or {},
        )
    else:
        for host, counts in hosts.items():
            ok = host_succeeded(hosts, host, status=status)
            timeline.record_event(
                session=session,
                action=Kind.DISCOVER,
                reason="HostReachable" if ok else "HostUnreachable",
                result=Result.SUCCEEDED if ok else Result.FAILED,
                severity=Severity.INFO if ok else Severity.WARNING,
                job_id=job.id,
                note=host,
                details=counts,
            )
    timeline.record_event(
        session=session,
        action=job.kind,
        reason=f"Job{status.capitalize()}",
        result=_RESULT[status],
        severity=Severity.INFO if status == Status.SUCCESSFUL else Severity.WARNING,
        job_id=job.id,
        duration_ms=duration_ms,
        note=with_run_options(job, error),
        details={"rc": rc, "status": status, **run_options(job)},
    )
    return job


def _record_checked(
    *, session: Session, job: Job, status: Status, failures: Mapping[str, HostFailure]
) -> None:
    """A check job's end on each node's history: what it would change, or why the check failed.
    No node moves, and a failure is no HostFailed: the node itself is as it was."""
    rows = nodes.find_nodes(session=session, names=job.nodes)
    for _, node in sorted(rows.items()):
        counts = job.hosts.get(node.name)
        ok = host_succeeded(job.hosts, node.name, status=status)
        if ok:
            changed = (counts or {}).get("changed", 0)
            tasks = "task" if changed == 1 else "tasks"
            note = f"{changed} {tasks} would change something" if changed else "nothing to change"
        else:
            note = _why(job, node.name, status=status, failures=failures).note()
        timeline.record_event(
            session=session,
            action=job.kind,
            reason="HostChecked",
            result=Result.SUCCEEDED if ok else _RESULT[status],
            severity=Severity.INFO if ok else Severity.WARNING,
            node=node,
            job_id=job.id,
            note=with_run_options(job, note),
            details={**(counts or {}), **run_options(job)},
        )


def not_touched(job: Job, *, status: Status, hosts: Mapping[str, Any], ran: bool) -> list[str]:
    """The nodes of an update or decommission that nothing ran on, in the job's order.

    A rolling playbook stops after a batch that failed: the hosts of the batches it never
    reached are absent from Ansible's recap, which lists every host a task ran on. Only a failed
    run that ended with its recap says so: a cancel, a timeout or a stop kills ansible-playbook,
    which then prints no recap, and the events read before the kill may miss a task that had
    just started, so their nodes fail as before. A job whose playbook never started (cancelled
    before it ran, or no inventory) touched none of its nodes."""
    if job.kind not in (Kind.UPDATE, Kind.DECOMMISSION) or status == Status.SUCCESSFUL:
        return []
    if not ran:
        return list(job.nodes)
    if status != Status.FAILED or not hosts:
        return []
    return [name for name in job.nodes if name not in hosts]


def untouched_text(names: Sequence[str], *, ran: bool) -> str:
    """What the job's error adds about the nodes it never reached."""
    shown = ", ".join(names[:DESC_SHOWN]) + (
        f" and {len(names) - DESC_SHOWN} more" if len(names) > DESC_SHOWN else ""
    )
    why = "the rollout stopped after a failed batch" if ran else "the playbook never started"
    return f"{why}; not touched: {shown}"


def _settle_maintenance(
    *,
    session: Session,
    job: Job,
    status: Status,
    failures: Mapping[str, HostFailure],
    inputs: Mapping[str, Any],
) -> None:
    """Move the node of a maintenance job that succeeded; one that failed stays where it was
    (maybe cordoned, or drained in part: the note says why, and the job can be run again)."""
    event = maintenance_event(inputs)
    drain = bool((inputs.get("maintenance") or {}).get("drain"))
    reason = "MaintenanceOn" if event == Event.MAINTENANCE_ON else "MaintenanceOff"
    rows = nodes.find_nodes(session=session, names=job.nodes)
    for _, node in sorted(rows.items()):
        counts = job.hosts.get(node.name) or {}
        if not host_succeeded(job.hosts, node.name, status=status):
            why = _why(job, node.name, status=status, failures=failures)
            timeline.record_event(
                session=session,
                action=job.kind,
                reason="HostFailed",
                result=_RESULT[status],
                severity=Severity.WARNING,
                node=node,
                actor=job.actor,
                job_id=job.id,
                # The node's state is unchanged: no from/to state, as no move happened.
                note=why.note(),
                details={**counts, **why.details(), "maintenance": reason, "drain": drain},
            )
            continue
        try:
            from_state, to_state = nodes.apply_event(session=session, node=node, event=event)
        except Conflict:
            continue  # moved meanwhile (see _settle_nodes): leave it where it is
        timeline.record_event(
            session=session,
            action=job.kind,
            reason=reason,
            result=Result.SUCCEEDED,
            node=node,
            actor=job.actor,
            from_state=from_state,
            to_state=to_state,
            job_id=job.id,
            details={**counts, "drain": drain},
        )


def _settle_nodes(
    *,
    session: Session,
    job: Job,
    status: Status,
    failures: Mapping[str, HostFailure],
    untouched: Collection[str] = (),
    before: Mapping[str, str] | None = None,
) -> None:
    start, succeed, fail = EVENTS[job.kind]
    rows = nodes.find_nodes(session=session, names=job.nodes)
    for _, node in sorted(rows.items()):
        was = (before or {}).get(node.name)
        back = None
        if node.name in untouched and was is not None:
            back = nodes.untouched_event(start=start, before=State(was))
        if back is not None:
            _put_back(session=session, job=job, node=node, event=back)
            continue
        ok = host_succeeded(job.hosts, node.name, status=status)
        try:
            from_state, to_state = nodes.apply_event(
                session=session, node=node, event=succeed if ok else fail
            )
        except Conflict:
            # Someone moved the node meanwhile (it cannot happen through the API while the job
            # holds it, but a restart may find it anywhere): leave it where it is.
            continue
        why = None if ok else _why(job, node.name, status=status, failures=failures)
        timeline.record_event(
            session=session,
            action=job.kind,
            reason="HostSucceeded" if ok else "HostFailed",
            result=Result.SUCCEEDED if ok else _RESULT[status],
            severity=Severity.INFO if ok else Severity.WARNING,
            node=node,
            from_state=from_state,
            to_state=to_state,
            job_id=job.id,
            # A failed host's note says why in one line; details hold reason, task and message.
            note=why.note() if why else None,
            details={**job.hosts.get(node.name, {}), **why.details()}
            if why
            else job.hosts.get(node.name),
        )


def _put_back(*, session: Session, job: Job, node: NodeView, event: Event) -> None:
    """A node the job never reached: back to its state before the job, and no HostFailed."""
    try:
        from_state, to_state = nodes.apply_event(session=session, node=node, event=event)
    except Conflict:
        return  # moved meanwhile (see _settle_nodes): leave it where it is
    timeline.record_event(
        session=session,
        action=job.kind,
        reason="NotTouched",
        result=Result.CANCELED,
        severity=Severity.WARNING,
        node=node,
        from_state=from_state,
        to_state=to_state,
        job_id=job.id,
        note=f"the {job.kind} never reached this node (nothing ran on it): back to {to_state}; "
        f"run the {job.kind} again for it",
    )


def _why(
    job: Job, name: str, *, status: Status, failures: Mapping[str, HostFailure]
) -> HostFailure:
    """Why a host failed: what its tasks said (`failures`), else how the job ended
    (results.explain), else only its counts (a job ended by a new leader, say)."""
    known = failures.get(name)
    if known is not None:
        return known
    return results.explain(
        status=status,
        counts=job.hosts.get(name),
        last_failed=None,
        last_unreachable=None,
        running_task=None,
    )


def abandoned_jobs(*, session: Session, exclude: int | None = None) -> list[Job]:
    """Jobs a leader took and no longer drives: running, or queued but claimed. A queued job
    nobody claimed is not among them: the next runner runs it."""
    query = sa.select(Job).where(
        sa.or_(
            Job.status == Status.RUNNING,
            sa.and_(Job.status == Status.QUEUED, Job.leader.is_not(None)),
        )
    )
    if exclude is not None:
        query = query.where(Job.id != exclude)
    return list(session.scalars(query.order_by(Job.id)))


def interruption(job: Job) -> str:
    """Why an abandoned job ended, as its error says and its log's last line."""
    who = f"the replica {job.leader}" if job.leader else "the replica"
    return (
        f"clusterm stopped while this job was running ({who} that ran it stopped or lost the lead)"
    )


def interrupt_abandoned(*, session: Session, exclude: int | None = None) -> list[Job]:
    """Mark every abandoned job interrupted (a leader that died, stopped or lost the lead), its
    nodes settled as failed. Called by a new leader, in a fenced transaction."""
    abandoned = abandoned_jobs(session=session, exclude=exclude)
    for job in abandoned:
        finish_job(
            session=session,
            job_id=job.id,
            status=Status.INTERRUPTED,
            rc=None,
            hosts=job.hosts,
            error=f"{interruption(job)}: a crash, a kill, a reboot or a lost lead; "
            + _what_became_of_the_nodes(job),
        )
    return abandoned


def _what_became_of_the_nodes(job: Job) -> str:
    if job.check:
        return "no node was moved (a check job): run it again"
    if job.kind == Kind.MAINTENANCE:
        return "its node stays where it was (a maintenance job): run it again"
    return "its nodes were marked failed: check them, then run the job again"
