"""Jobs over HTTP: the original clusterm's routes (with real status codes), logs, follow, cancel.

The routes and shapes kept from the original: docs/contracts.md#contiv-clusterm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from app import streams
from app.auth.deps import AdminDep, OperatorDep, ViewerDep, record_refusal
from app.auth.service import Principal
from app.deps import DbDep, FollowersDep, JobsDep
from app.errors import Forbidden, NotFound, ValidationFailed
from app.followers import Followers
from app.jobs import follow, hosts, service, variables
from app.jobs.filters import JobFilter
from app.jobs.logstore import StoredJob
from app.jobs.schemas import (
    CleanupRequest,
    CommissionRequest,
    DecommissionRequest,
    DiscoverRequest,
    GlobalsBody,
    GlobalsRead,
    JobRead,
    UpdateRequest,
    to_addresses,
)
from app.jobs.views import job_text, job_view, jobs_table, render_log
from app.jobs.vocabulary import ACTIVE_STATUSES, Kind
from app.jobs.worker import JobManager
from app.tables import TEXT_MEDIA_TYPE, wants_text

router = APIRouter(tags=["jobs"])

# The log routes are async: the job and its log are brought up to date from the database in a
# thread (app.jobs.logstore), then a few lines are rendered in the event loop. More lines than
# this are rendered in a thread too, so that a whole 8 MiB log (tens of ms of json.dumps) never
# holds up the loop.
INLINE_LINES = 500
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


def _run_options(body: CommissionRequest | UpdateRequest | DecommissionRequest) -> dict[str, Any]:
    return {"check": body.check, "tags": body.tags, "skip_tags": body.skip_tags}


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
    """Commission nodes: the commission playbook on them (a job; 202 with its id).

    `check: true` runs it with --check --diff: no node moves, nothing changes, and the job says
    per host what would change. `tags` / `skip_tags` run or skip the playbook's tagged steps
    (docs/jobs.md lists them); the name check and the verified join run whatever the tags."""
    _check_extra_vars(request, who, body.extra_vars, jobs)
    job = jobs.submit(
        kind=Kind.COMMISSION,
        names=body.nodes,
        host_group=body.host_group,
        extra_vars=body.extra_vars,
        actor=who.name,
        cleanup=body.cleanup,
        **_run_options(body),
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
    """Decommission nodes: drain, leave the cluster, reset (a job; 202 with its id).

    `check`, `tags` and `skip_tags` as for POST /commission/nodes."""
    _check_extra_vars(request, who, body.extra_vars, jobs)
    job = jobs.submit(
        kind=Kind.DECOMMISSION,
        names=body.nodes,
        host_group=None,
        extra_vars=body.extra_vars,
        actor=who.name,
        **_run_options(body),
    )
    return _accepted(response, job)


@router.post("/update/nodes", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def update_nodes(
    body: UpdateRequest, who: OperatorDep, jobs: JobsDep, request: Request, response: Response
) -> JobRead:
    """Update commissioned nodes: re-apply the configuration, in batches (a job).

    `check: true` says what an update would change without changing it; `tags` / `skip_tags`
    as for POST /commission/nodes (`tags: ["packages"]`: the packages only)."""
    _check_extra_vars(request, who, body.extra_vars, jobs)
    job = jobs.submit(
        kind=Kind.UPDATE,
        names=body.nodes,
        host_group=body.host_group,
        extra_vars=body.extra_vars,
        actor=who.name,
        **_run_options(body),
    )
    return _accepted(response, job)


@router.post(
    "/cleanup/nodes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    summary="Run the cleanup playbook on failed nodes (they end registered when it succeeds)",
)
def cleanup_nodes(
    body: CleanupRequest, who: OperatorDep, jobs: JobsDep, request: Request, response: Response
) -> JobRead:
    _check_extra_vars(request, who, body.extra_vars, jobs)
    job = jobs.submit(
        kind=Kind.CLEANUP,
        names=body.nodes,
        host_group=None,
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


SinceQ = Annotated[int, Query(ge=0, le=MAX_ID, description="only the lines after N")]


@dataclass(frozen=True)
class LogQuery:
    """What part of a job's log to serve, and how: the same for every log route."""

    since: int
    tail: int | None
    limit: int | None
    text: bool
    color: bool


async def _log_query(
    since: SinceQ = 0,
    tail: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only the last N lines")] = None,
    # A page of a long log, e.g. the lines before those a reader already holds (the console's
    # "load earlier"): without it, a reader of an early range would get the whole rest.
    limit: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="at most N lines from the start")
    ] = None,
    format: Annotated[Literal["json", "text"] | None, Query()] = None,
    color: Annotated[bool, Query(description="false strips ANSI colour codes")] = True,
    accept: Annotated[str | None, Header()] = None,
) -> LogQuery:
    return LogQuery(
        since=since, tail=tail, limit=limit, text=wants_text(format, accept), color=color
    )


LogQueryDep = Annotated[LogQuery, Depends(_log_query)]
JobIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/info/job/{which}", summary="The active or the last job, with its log")
async def get_job_log(
    which: Literal["active", "last"], jobs: JobsDep, _: ViewerDep, query: LogQueryDep
) -> Response:
    return await _log_response(jobs, await _pick(jobs, which), query)


@router.get("/jobs/{job_id}/log", summary="Any job with its log (kept for the newest jobs)")
async def get_job_log_by_id(
    job_id: JobIdPath, jobs: JobsDep, _: ViewerDep, query: LogQueryDep
) -> Response:
    """As GET /info/job/last, for any job; 410 once its log is no longer kept (job_dirs_kept)."""
    return await _log_response(jobs, await run_in_threadpool(jobs.stored_job, job_id), query)


async def _log_response(jobs: JobManager, run: StoredJob, query: LogQuery) -> Response:
    since, tail, limit = query.since, query.tail, query.limit
    text, color = query.text, query.color
    # The status is read before the log: a job turns finished only after its log is complete,
    # so a reader never sees "finished" with lines missing.
    view = job_view(run.row)
    whole = view["status"] not in ACTIVE_STATUSES and since == 0 and tail is None and limit is None
    key = ("text" if text else "json", color)
    body = run.bodies.get(key) if whole else None
    if body is None:
        piece = run.log.read(since=since, tail=tail, limit=limit)
        if len(piece.lines) <= INLINE_LINES:
            body = render_log(view, piece, text=text, color=color)
        else:
            body = await run_in_threadpool(render_log, view, piece, text=text, color=color)
        if whole:
            jobs.logs.remember_body(run, key, body)
    headers = {
        "X-Clusterm-Job-Id": str(run.row.id),
        "X-Clusterm-Job-Status": view["status"],
        "X-Clusterm-Next-Line": str(run.log.next_line if whole else piece.next_line),
    }
    media = TEXT_MEDIA_TYPE if text else "application/json"
    return Response(body, media_type=media, headers=headers)


@router.get("/info/job/active/stream", summary="Follow the active job (Server-Sent Events)")
async def stream_job_log(
    request: Request,
    jobs: JobsDep,
    followers: FollowersDep,
    _: ViewerDep,
    since: SinceQ = 0,
    color: Annotated[bool, Query()] = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    resume = streams.last_event_id(last_event_id, max_id=MAX_ID)
    try:
        run = await _pick(jobs, "active")
    except NotFound:
        if resume is None:
            raise
        # A follower reconnecting after the job ended (its connection broke near the end): the
        # rest of the job that ended last, and its status. GET /jobs/{id}/log/stream names the
        # job, for a client that must not mistake a later job for it.
        run = await _pick(jobs, "last")
    return _follow(request, jobs, followers, run, since=since, resume=resume, color=color)


@router.get("/jobs/{job_id}/log/stream", summary="Follow any job's log (Server-Sent Events)")
async def stream_job_log_by_id(
    request: Request,
    job_id: JobIdPath,
    jobs: JobsDep,
    followers: FollowersDep,
    _: ViewerDep,
    since: SinceQ = 0,
    color: Annotated[bool, Query()] = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """The lines after the cursor, new ones as they come, then a `status` event: for a running
    job, or one long finished (a client resumes with Last-Event-ID after the job's end too)."""
    resume = streams.last_event_id(last_event_id, max_id=MAX_ID)
    run = await run_in_threadpool(jobs.stored_job, job_id)
    return _follow(request, jobs, followers, run, since=since, resume=resume, color=color)


def _follow(
    request: Request,
    jobs: JobManager,
    followers: Followers,
    run: StoredJob,
    *,
    since: int,
    resume: int | None,
    color: bool,
) -> EventSourceResponse:
    cursor = since if resume is None else max(since, resume)
    events = follow.log_events(jobs, run, cursor, color)
    return streams.open_stream(request, events, followers=followers, ping=15)


@router.post("/info/job/active/cancel", response_model=JobRead, summary="Cancel the active job")
def cancel_job(jobs: JobsDep, who: OperatorDep) -> JobRead:
    return JobRead.model_validate(jobs.cancel(actor=who.name))


_LIST_PARAMS = {"limit", "before_id", "node", "kind", "status", "since", "format"}


async def _known_params(request: Request) -> None:
    # A misspelt filter (`?state=failed`) would otherwise be ignored, and the reader would take
    # every job for the ones asked for.
    for name in request.query_params:
        if name not in _LIST_PARAMS:
            known = ", ".join(sorted(_LIST_PARAMS))
            reason = f"unknown parameter; this route takes {known}"
            raise ValidationFailed(f"{name}: {reason}", fields=[{"field": name, "reason": reason}])


FormatQ = Annotated[Literal["json", "text"] | None, Query(description="text: an aligned table")]


@router.get(
    "/jobs",
    response_model=list[JobRead],
    summary="Jobs, newest first",
    dependencies=[Depends(_known_params)],
)
def list_jobs(
    db: DbDep,
    _: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only jobs older than this")
    ] = None,
    node: Annotated[str | None, Query(description="only jobs on this node (or address)")] = None,
    kind: Annotated[list[str], Query(description="commission, update, …; repeatable")] = [],  # noqa: B006
    status: Annotated[list[str], Query(description="failed, running, …; repeatable")] = [],  # noqa: B006
    since: Annotated[
        str | None, Query(description="created since: 7d, 12h, or an ISO 8601 time (UTC)")
    ] = None,
    format: FormatQ = None,
    accept: Annotated[str | None, Header()] = None,
) -> list[JobRead] | Response:
    filters = JobFilter.parse(node=node, kinds=kind, statuses=status, since=since)
    with db.read() as session:
        rows = service.list_jobs(session=session, limit=limit, before_id=before_id, filters=filters)
        if wants_text(format, accept):
            return Response(jobs_table(rows), media_type=TEXT_MEDIA_TYPE)
        return [JobRead.model_validate(r) for r in rows]


@router.get("/jobs/{job_id}", response_model=JobRead)
def get_job(
    job_id: JobIdPath,
    db: DbDep,
    _: ViewerDep,
    format: FormatQ = None,
    accept: Annotated[str | None, Header()] = None,
) -> JobRead | Response:
    with db.read() as session:
        job = service.get_job(session=session, job_id=job_id)
        would_change = hosts.would_change(session=session, job=job)
        if wants_text(format, accept):
            return Response(job_text(job, would_change), media_type=TEXT_MEDIA_TYPE)
        return JobRead.model_validate(job).model_copy(update={"would_change": would_change})


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
