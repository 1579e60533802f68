"""Jobs over HTTP: the original clusterm's routes (with real status codes), logs, follow, cancel.

The routes and shapes kept from the original: docs/contracts.md#contiv-clusterm.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app import streams
from app.ansible.logbuffer import LogSlice
from app.auth.deps import AdminDep, OperatorDep, ViewerDep, record_refusal
from app.auth.service import Principal
from app.deps import DbDep, FollowersDep, JobsDep
from app.errors import Forbidden, NotFound
from app.jobs import service, variables
from app.jobs.logstore import StoredJob
from app.jobs.schemas import (
    CommissionRequest,
    DecommissionRequest,
    DiscoverRequest,
    GlobalsBody,
    GlobalsRead,
    JobRead,
    UpdateRequest,
    to_addresses,
)
from app.jobs.views import job_view, log_text, render_line
from app.jobs.vocabulary import ACTIVE_STATUSES, Kind
from app.jobs.worker import JobManager

router = APIRouter(tags=["jobs"])

STREAM_BATCH = 1000  # lines per read while streaming a backlog
# The log routes are async: the job and its log are brought up to date from the database in a
# thread (app.jobs.logstore), then a few lines are rendered in the event loop. More lines than
# this are rendered in a thread too, so that a whole 8 MiB log (tens of ms of json.dumps) never
# holds up the loop.
INLINE_LINES = 500
# How often a follower looks at the database for new lines; the replica's copy of the log is
# shared, so each look costs two small reads, plus the new lines once for all followers.
STREAM_POLL_S = 0.25
# Job ids are INTEGER columns: 32 bits on PostgreSQL. A larger id is a 422, not a driver error.
MAX_ID = 2**31 - 1


def _check_extra_vars(
    request: Request, who: Principal, extra_vars: dict[str, Any], jobs: JobManager
) -> None:
    try:
        variables.check_extra_vars(
            role=who.role, extra_vars=extra_vars, declared=jobs.settings.operator_extra_vars
        )
    except Forbidden as exc:
        # An operator reaching for an admin-only var is a refusal like a too-low role: audited.
        record_refusal(request, who, exc)
        raise


def _accepted(response: Response, job: Any) -> JobRead:
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobRead.model_validate(job)


@router.post("/commission/nodes", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def commission_nodes(
    body: CommissionRequest,
    who: OperatorDep,
    jobs: JobsDep,
    request: Request,
    response: Response,
) -> JobRead:
    _check_extra_vars(request, who, body.extra_vars, jobs)
    job = jobs.submit(
        kind=Kind.COMMISSION,
        names=body.nodes,
        host_group=body.host_group,
        extra_vars=body.extra_vars,
        actor=who.name,
    )
    return _accepted(response, job)


@router.post("/decommission/nodes", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def decommission_nodes(
    body: DecommissionRequest,
    who: OperatorDep,
    jobs: JobsDep,
    request: Request,
    response: Response,
) -> JobRead:
    _check_extra_vars(request, who, body.extra_vars, jobs)
    job = jobs.submit(
        kind=Kind.DECOMMISSION,
        names=body.nodes,
        host_group=None,
        extra_vars=body.extra_vars,
        actor=who.name,
    )
    return _accepted(response, job)


@router.post("/update/nodes", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def update_nodes(
    body: UpdateRequest, who: OperatorDep, jobs: JobsDep, request: Request, response: Response
) -> JobRead:
    _check_extra_vars(request, who, body.extra_vars, jobs)
    job = jobs.submit(
        kind=Kind.UPDATE,
        names=body.nodes,
        host_group=body.host_group,
        extra_vars=body.extra_vars,
        actor=who.name,
    )
    return _accepted(response, job)


@router.post("/discover/nodes", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def discover_nodes(
    body: DiscoverRequest, who: OperatorDep, jobs: JobsDep, request: Request, response: Response
) -> JobRead:
    _check_extra_vars(request, who, body.extra_vars, jobs)
    addresses = to_addresses(body.addrs, body.ssh_user)
    job = jobs.submit(
        kind=Kind.DISCOVER,
        names=[a.host for a in addresses],
        host_group=None,
        extra_vars=body.extra_vars,
        actor=who.name,
        addresses=addresses,
    )
    return _accepted(response, job)


async def _pick(jobs: JobManager, which: Literal["active", "last"]) -> StoredJob:
    stored = await run_in_threadpool(jobs.stored, which)
    if stored is None:
        if which == "active":
            raise NotFound("no job is active; the last one is at GET /info/job/last")
        raise NotFound("no job has finished yet; start one with POST /commission/nodes")
    return stored


def _wants_text(fmt: str | None, accept: str | None) -> bool:
    if fmt is not None:
        return fmt == "text"
    first = (accept or "").split(",")[0].split(";")[0].strip().lower()
    return first == "text/plain"


@router.get("/info/job/{which}", summary="The active or the last job, with its log")
async def get_job_log(
    which: Literal["active", "last"],
    jobs: JobsDep,
    _: ViewerDep,
    since: Annotated[int, Query(ge=0, le=MAX_ID, description="only the lines after N")] = 0,
    tail: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only the last N lines")] = None,
    format: Annotated[Literal["json", "text"] | None, Query()] = None,
    color: Annotated[bool, Query(description="false strips ANSI colour codes")] = True,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    run = await _pick(jobs, which)
    text = _wants_text(format, accept)
    # The status is read before the log: a job turns finished only after its log is complete,
    # so a reader never sees "finished" with lines missing.
    view = job_view(run.row)
    whole = view["status"] not in ACTIVE_STATUSES and since == 0 and tail is None
    key = ("text" if text else "json", color)
    body = run.bodies.get(key) if whole else None
    if body is None:
        piece = run.log.read(since=since, tail=tail)
        if len(piece.lines) <= INLINE_LINES:
            body = _render(view, piece, text=text, color=color)
        else:
            body = await run_in_threadpool(_render, view, piece, text=text, color=color)
        if whole:
            jobs.logs.remember_body(run, key, body)
    headers = {
        "X-Clusterm-Job-Id": str(run.row.id),
        "X-Clusterm-Job-Status": view["status"],
        "X-Clusterm-Next-Line": str(run.log.next_line if whole else piece.next_line),
    }
    media = "text/plain; charset=utf-8" if text else "application/json"
    return Response(body, media_type=media, headers=headers)


def _render(view: dict[str, Any], piece: LogSlice, *, text: bool, color: bool) -> bytes:
    if text:
        return log_text(piece, color=color).encode("utf-8")
    view.update(
        logs=piece.lines if color else [render_line(line, False) for line in piece.lines],
        first_line=piece.first_line,
        next_line=piece.next_line,
        dropped_lines=piece.dropped_lines,
        dropped_bytes=piece.dropped_bytes,
        gap=None if piece.gap is None else vars(piece.gap),
        complete=piece.complete,
    )
    return json.dumps(view, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@router.get("/info/job/active/stream", summary="Follow the active job (Server-Sent Events)")
async def stream_job_log(
    request: Request,
    jobs: JobsDep,
    followers: FollowersDep,
    _: ViewerDep,
    since: Annotated[int, Query(ge=0, le=MAX_ID, description="only the lines after N")] = 0,
    color: Annotated[bool, Query()] = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    resume = streams.last_event_id(last_event_id, max_id=MAX_ID)
    run = await _pick(jobs, "active")
    cursor = since if resume is None else max(since, resume)
    events = _events(jobs, run, cursor, color)
    return streams.open_stream(request, events, followers=followers, ping=15)


async def _events(
    jobs: JobManager, run: StoredJob, cursor: int, color: bool
) -> AsyncIterator[ServerSentEvent]:
    """The backlog after `cursor`, then lines as they come, then one `status` event. Line
    numbers are the same on every replica: a client resumes anywhere with Last-Event-ID."""
    while True:
        # The row before the log: a job turns finished only once its log is complete.
        finished = run.row.status not in ACTIVE_STATUSES
        piece = run.log.read(since=cursor, limit=STREAM_BATCH)
        for number, line in piece.numbered():
            if number is None:
                assert piece.gap is not None
                last_dropped = piece.gap.after_line + piece.gap.lines
                yield ServerSentEvent(data=line, event="gap", id=str(last_dropped))
            else:
                yield ServerSentEvent(data=render_line(line, color), event="line", id=str(number))
        cursor = piece.next_line - 1
        if piece.complete and finished:
            yield ServerSentEvent(data=json.dumps(job_view(run.row)), event="status")
            return
        if len(piece.lines) < STREAM_BATCH:
            await asyncio.sleep(STREAM_POLL_S)
            job_id = run.row.id
            fresh = jobs.logs.peek(job_id, max_age_s=STREAM_POLL_S)
            run = fresh if fresh is not None else await run_in_threadpool(jobs.stored_job, job_id)


@router.post("/info/job/active/cancel", response_model=JobRead, summary="Cancel the active job")
def cancel_job(jobs: JobsDep, who: OperatorDep) -> JobRead:
    return JobRead.model_validate(jobs.cancel(actor=who.name))


@router.get("/jobs", response_model=list[JobRead], summary="Jobs, newest first")
def list_jobs(
    db: DbDep,
    _: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only jobs older than this")
    ] = None,
) -> list[JobRead]:
    with db.read() as session:
        rows = service.list_jobs(session=session, limit=limit, before_id=before_id)
        return [JobRead.model_validate(r) for r in rows]


@router.get("/jobs/{job_id}", response_model=JobRead)
def get_job(job_id: Annotated[int, Path(ge=1, le=MAX_ID)], db: DbDep, _: ViewerDep) -> JobRead:
    with db.read() as session:
        return JobRead.model_validate(service.get_job(session=session, job_id=job_id))


@router.get("/globals", response_model=GlobalsRead, summary="Global extra vars of every job")
def get_globals(db: DbDep, _: AdminDep) -> GlobalsRead:
    with db.read() as session:
        return GlobalsRead.model_validate(variables.get_globals(session=session))


@router.put("/globals", response_model=GlobalsRead)
@router.post("/globals", response_model=GlobalsRead, include_in_schema=False)  # the original's verb
def set_globals(body: GlobalsBody, db: DbDep, who: AdminDep) -> GlobalsRead:
    with db.write() as session:
        row = variables.set_globals(session=session, extra_vars=body.extra_vars, actor=who.name)
    return GlobalsRead.model_validate(row)
