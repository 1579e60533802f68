"""Jobs as stored: accept a request (every check happens before a job exists), start, finish,
settle the nodes, recover after a crash, list; and the global extra vars.

A job's nodes move through the state machine twice: the *_start event when the job is accepted
(in the same transaction as the job row, so a refused request changes nothing), and the
*_succeed or *_fail event when it ends, chosen per host from that host's own result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import Conflict, Invalid, JobActive, NodeNotFound, NotFound
from app.jobs import results
from app.jobs.filters import JobFilter
from app.jobs.models import Job
from app.jobs.results import HostFailure
from app.jobs.vocabulary import Kind, Status
from app.nodes import service as nodes
from app.nodes.service import NodeView
from app.nodes.vocabulary import Event, HostGroup, State
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity

# kind -> (start, succeed, fail) events; discover has no nodes to move.
EVENTS: dict[Kind, tuple[Event, Event, Event]] = {
    Kind.COMMISSION: (Event.COMMISSION_START, Event.COMMISSION_SUCCEED, Event.COMMISSION_FAIL),
    Kind.DECOMMISSION: (
        Event.DECOMMISSION_START,
        Event.DECOMMISSION_SUCCEED,
        Event.DECOMMISSION_FAIL,
    ),
    Kind.UPDATE: (Event.UPDATE_START, Event.UPDATE_SUCCEED, Event.UPDATE_FAIL),
    Kind.CLEANUP: (Event.CLEANUP_START, Event.CLEANUP_SUCCEED, Event.CLEANUP_FAIL),
}
_RESULT = {
    Status.SUCCESSFUL: Result.SUCCEEDED,
    Status.FAILED: Result.FAILED,
    Status.TIMEOUT: Result.FAILED,
    Status.CANCELED: Result.CANCELED,
    Status.INTERRUPTED: Result.INTERRUPTED,
}


@dataclass(frozen=True)
class Targets:
    """What the worker needs to build the inventory, read in the job's start transaction."""

    nodes: list[NodeView]
    cluster_masters: list[NodeView]  # first: the master others join (nodes.cluster_masters)


# The column's size: PostgreSQL refuses a longer text (a 500), SQLite would store it anyway.
DESC_MAX: int = getattr(Job.__table__.c.desc.type, "length", None) or 1024
DESC_SHOWN = 10


def describe(kind: Kind, names: Sequence[str], host_group: HostGroup | None) -> str:
    """One line for the job list: the first names, and how many more; it always fits `job.desc`."""
    what = "addresses" if kind == Kind.DISCOVER else "nodes"
    group = f" as {host_group}" if host_group else ""
    shown = list(names[:DESC_SHOWN])
    while True:
        more = len(names) - len(shown)
        text = f"{kind} {what} {', '.join(shown)}{f' and {more} more' if more else ''}{group}"
        # Ten 253-character DNS names do not fit: show fewer of them.
        if len(text) <= DESC_MAX or not shown:
            return text[:DESC_MAX]
        shown.pop()


def active_job(*, session: Session) -> Job | None:
    return session.scalar(sa.select(Job).where(Job.active_slot == 1))


def accept_job(
    *,
    session: Session,
    kind: Kind,
    names: Sequence[str],
    host_group: HostGroup | None,
    actor: str,
    extra_var_names: Sequence[str] = (),
    inputs: dict[str, Any] | None = None,
) -> Job:
    """Check everything, move the nodes to their *_start state and create the job (queued).

    `inputs` is what the leader needs to run it (the request's extra vars, a discover's
    addresses); it is kept on the row until the job ends. The timeline records the names of the
    request's extra vars, never their values (secrets).
    """
    active = active_job(session=session)
    if active is not None:
        raise JobActive(job_id=active.id, kind=active.kind)
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            what = "address" if kind == Kind.DISCOVER else "node"
            raise Invalid(f"{what} {name!r} is given twice (at [{index}]); give each once")
        seen.add(name)
    job = Job(
        kind=kind,
        desc=describe(kind, names, host_group),
        nodes=list(names),
        host_group=host_group,
        actor=actor,
        status=Status.QUEUED,
        hosts={},
        active_slot=1,
        created_at=utcnow(),
        inputs=inputs,
    )
    # The slot first, before any node row: concurrent requests (on any replica) queue on the one
    # unique slot, never on node rows taken in different orders, and the loser learns who won.
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        winner = active_job(session=session)
        if winner is None:
            raise Conflict("another job was accepted meanwhile; send the request again") from None
        raise JobActive(job_id=winner.id, kind=winner.kind) from None
    moved: list[tuple[NodeView, State, State]] = []
    if kind != Kind.DISCOVER:
        moved = _start_nodes(session=session, kind=kind, names=names, host_group=host_group)
    timeline.record_event(
        session=session,
        action=kind,
        reason="JobAccepted",
        result=Result.STARTED,
        actor=actor,
        job_id=job.id,
        note=job.desc,
        details={"extra_vars": sorted(extra_var_names)},
    )
    for node, from_state, to_state in moved:
        timeline.record_event(
            session=session,
            action=kind,
            reason="StateChanged",
            result=Result.STARTED,
            node=node,
            actor=actor,
            from_state=from_state,
            to_state=to_state,
            job_id=job.id,
        )
    return job


def _start_nodes(
    *, session: Session, kind: Kind, names: Sequence[str], host_group: HostGroup | None
) -> list[tuple[NodeView, State, State]]:
    """Apply the kind's start event to every node; return (node, from, to) for the timeline."""
    rows = nodes.find_nodes(session=session, names=names)
    for name in names:
        if name not in rows:
            raise NodeNotFound(name)
    targets = [rows[name] for name in names]
    if host_group is not None:
        for node in targets:
            if node.host_group == host_group:
                continue
            if kind != Kind.COMMISSION:
                raise Conflict(
                    f"node {node.name!r} is a {node.host_group}: a {kind} cannot move it to "
                    f"{host_group}; decommission it, then commission it with host_group "
                    f"{host_group}",
                    node=node.name,
                )
    if kind == Kind.CLEANUP:
        others = [f"{n.name} ({n.state})" for n in targets if n.state != State.FAILED]
        if others:
            raise Conflict(
                "a cleanup runs on failed nodes only; these are not failed: "
                + ", ".join(others)
                + ". Leave them out (decommission a node that is in the cluster)",
                nodes={n.name: str(n.state) for n in targets if n.state != State.FAILED},
            )
    start = EVENTS[kind][0]
    moved = []
    for node in targets:
        moved.append((node, *nodes.apply_event(session=session, node=node, event=start)))
        if kind == Kind.COMMISSION and host_group is not None:
            nodes.set_host_group(node=node, host_group=host_group)
    if kind == Kind.COMMISSION and any(n.host_group == HostGroup.WORKER for n in targets):
        has_master = any(
            n.host_group == HostGroup.MASTER for n in targets
        ) or nodes.cluster_masters(session=session, exclude=names)
        if not has_master:
            worker = next(n.name for n in targets if n.host_group == HostGroup.WORKER)
            raise Conflict(
                f"node {worker!r} is a worker, and no master is commissioned or in this job: "
                "commission a master first, or in the same request",
                node=worker,
            )
    return moved


def claim_next_job(*, session: Session, leader: str, epoch: int) -> tuple[Job, Targets] | None:
    """The leader (in a fenced transaction) takes the oldest queued job nobody claimed: running
    from here on, under `leader` and its lead's `epoch`. None when there is none."""
    job = session.scalar(
        sa.select(Job)
        .where(Job.status == Status.QUEUED, Job.leader.is_(None))
        .order_by(Job.id)
        .limit(1)
    )
    if job is None:
        return None
    claimed = session.execute(
        sa.update(Job)
        .where(Job.id == job.id, Job.status == Status.QUEUED, Job.leader.is_(None))
        .values(status=Status.RUNNING, started_at=utcnow(), leader=leader, lease_epoch=epoch)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    session.refresh(job)
    targets: list[NodeView] = []
    masters: list[NodeView] = []
    if job.kind != Kind.DISCOVER:
        rows = nodes.find_nodes(session=session, names=job.nodes)
        targets = [rows[name] for name in job.nodes if name in rows]
        masters = nodes.cluster_masters(session=session, exclude=job.nodes)
    timeline.record_event(
        session=session,
        action=job.kind,
        reason="JobStarted",
        result=Result.STARTED,
        job_id=job.id,
        note=f"run by {leader}",
    )
    return job, Targets(nodes=targets, cluster_masters=masters)


def request_cancel(*, session: Session, actor: str) -> Job:
    """Ask (on any replica) for the active job to be cancelled; the leader running it reads the
    row and stops it. A second ask changes nothing."""
    job = active_job(session=session)
    if job is None:
        raise NotFound("no job is active, so there is nothing to cancel")
    if job.cancel_requested_by is None:
        job.cancel_requested_by = actor
        timeline.record_event(
            session=session,
            action=job.kind,
            reason="CancelRequested",
            result=Result.CANCELED,
            actor=actor,
            job_id=job.id,
        )
    return job


def rearm_cancel(*, session: Session, job_id: int) -> None:
    """The job's cancel was done (its main playbook stopped) and its cleanup starts: forget the
    cancel, so that a new ask (`request_cancel`) stops the cleanup. Leader only, fenced."""
    session.execute(
        sa.update(Job)
        .where(Job.id == job_id)
        .values(cancel_requested_by=None)
        .execution_options(synchronize_session=False)
    )


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
) -> Job:
    """Record the end of a job and move each of its nodes by its own host's result;
    `failures` says why a host failed (app.jobs.results), else how the job ended does."""
    job = get_job(session=session, job_id=job_id)
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
    if job.kind != Kind.DISCOVER:
        _settle_nodes(session=session, job=job, status=status, failures=failures or {})
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
        note=error,
        details={"rc": rc, "status": status},
    )
    return job


def _settle_nodes(
    *, session: Session, job: Job, status: Status, failures: Mapping[str, HostFailure]
) -> None:
    _, succeed, fail = EVENTS[job.kind]
    rows = nodes.find_nodes(session=session, names=job.nodes)
    for _, node in sorted(rows.items()):
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
            error=f"{interruption(job)}: a crash, a kill, a reboot or a lost lead; its nodes "
            "were marked failed: check them, then run the job again",
        )
    return abandoned


def get_job(*, session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}; list the jobs with GET /jobs", job_id=job_id)
    return job


def list_jobs(
    *, session: Session, limit: int, before_id: int | None = None, filters: JobFilter | None = None
) -> list[Job]:
    query = sa.select(Job).order_by(Job.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Job.id < before_id)
    if filters is not None:
        query = query.where(*filters.where(session.get_bind().dialect.name))
    return list(session.scalars(query))


def last_finished_job(*, session: Session) -> Job | None:
    return session.scalar(
        sa.select(Job).where(Job.active_slot.is_(None)).order_by(Job.id.desc()).limit(1)
    )
