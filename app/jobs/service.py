"""Jobs as stored: accept a request (every check happens before a job exists), claim, cancel,
list; and the global extra vars. How a job ends and settles its nodes: app.jobs.ending.

A job's nodes move through the state machine twice: the *_start event when the job is accepted
(in the same transaction as the job row, so a refused request changes nothing), and, when it ends,
the event app.jobs.ending chooses per host. A maintenance job moves its node only at its end, and
a check job never moves one.
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
from app.jobs.filters import JobFilter
from app.jobs.models import Job
from app.jobs.vocabulary import Kind, Status
from app.nodes import service as nodes
from app.nodes.service import NodeView
from app.nodes.vocabulary import Event, HostGroup, State
from app.timeline import service as timeline
from app.timeline.vocabulary import Result

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
    check: bool = False,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
) -> Job:
    """Check everything, move the nodes to their *_start state and create the job (queued).

    `inputs` is what the leader needs to run it (the request's extra vars, a discover's
    addresses); it is kept on the row until the job ends. The timeline records the names of the
    request's extra vars, never their values (secrets).

    A `check` job (--check --diff) moves no node, now or at its end; it is refused as the real
    job would be (a node in a state the job does not start from, a worker with no master).
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
        check=check,
        tags=list(tags),
        skip_tags=list(skip_tags),
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
    if kind == Kind.MAINTENANCE:
        _check_maintenance(session=session, names=names, inputs=inputs or {})
        job.desc = maintenance_desc(job.desc, inputs or {})
    elif kind != Kind.DISCOVER and check:
        _would_start_nodes(session=session, kind=kind, names=names, host_group=host_group)
    elif kind != Kind.DISCOVER:
        moved = _start_nodes(session=session, kind=kind, names=names, host_group=host_group)
        # Where each node was: a node the job never reaches goes back there (finish_job).
        before = {node.name: str(from_state) for node, from_state, _ in moved}
        job.inputs = {**(job.inputs or {}), STATES_BEFORE: before}
    timeline.record_event(
        session=session,
        action=kind,
        reason="JobAccepted",
        result=Result.STARTED,
        actor=actor,
        job_id=job.id,
        note=with_run_options(job, job.desc),
        details={"extra_vars": sorted(extra_var_names), **run_options(job)},
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


def run_options(job: Job) -> dict[str, Any]:
    """How the job runs its playbook, for its timeline events' details: only what differs from
    a plain run, so an ordinary job's events stay as they were."""
    options: dict[str, Any] = {}
    if job.check:
        options["check"] = True
    if job.tags:
        options["tags"] = list(job.tags)
    if job.skip_tags:
        options["skip_tags"] = list(job.skip_tags)
    return options


def with_run_options(job: Job, note: str | None) -> str | None:
    """`note` with the job's check mode and tags said first: "check mode, tags packages: ..."."""
    parts = []
    if job.check:
        parts.append("check mode")
    if job.tags:
        parts.append(f"tags {','.join(job.tags)}")
    if job.skip_tags:
        parts.append(f"skip tags {','.join(job.skip_tags)}")
    if not parts:
        return note
    return ", ".join(parts) + (f": {note}" if note else "")


def _would_start_nodes(
    *, session: Session, kind: Kind, names: Sequence[str], host_group: HostGroup | None
) -> None:
    """Refuse a check job exactly as the real job would be refused: its start, in a savepoint
    rolled back whatever happens (no node moves, no host group changes)."""
    savepoint = session.begin_nested()
    try:
        _start_nodes(session=session, kind=kind, names=names, host_group=host_group)
    finally:
        savepoint.rollback()


STATES_BEFORE = "states_before"  # in a job's inputs: each node's state before the job


def maintenance_event(inputs: Mapping[str, Any]) -> Event:
    """A maintenance job's event, from its inputs (`maintenance`: the request's body)."""
    on = bool((inputs.get("maintenance") or {}).get("enabled"))
    return Event.MAINTENANCE_ON if on else Event.MAINTENANCE_OFF


def maintenance_desc(desc: str, inputs: Mapping[str, Any]) -> str:
    """`maintenance on nodes w1 (drain)`: which way, in the job list's line."""
    body = inputs.get("maintenance") or {}
    way = "on" if maintenance_event(inputs) == Event.MAINTENANCE_ON else "off"
    drain = " (drain)" if body.get("drain") else ""
    return f"{desc.replace('maintenance ', f'maintenance {way} ', 1)}{drain}"[:DESC_MAX]


def _check_maintenance(
    *, session: Session, names: Sequence[str], inputs: Mapping[str, Any]
) -> None:
    """Refuse (409, naming the node, its state and what it allows) a maintenance its node's state
    does not allow; the node moves only when the job succeeds."""
    for name in names:
        node = nodes.get_node(session=session, name=name)
        nodes.check_event(node=node, event=maintenance_event(inputs))


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
        note=with_run_options(job, f"run by {leader}"),
        details=run_options(job) or None,
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
