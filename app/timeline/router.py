"""HTTP for the timeline: pages (JSON or text), a node's history, and the live stream.

Read-only by design: events are immutable, so there is no route that changes or deletes one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sse_starlette import EventSourceResponse

from app import streams
from app.auth.deps import ViewerDep
from app.deps import DbDep, FollowersDep, SettingsDep
from app.timeline import pages, service, stream
from app.timeline.filters import TimelineFilter, refuse
from app.timeline.schemas import TimelinePage

router = APIRouter(tags=["timeline"])

MAX_ID = 2**63 - 1  # a database integer: a larger cursor would fail in the driver, not here
LIMIT_MAX = 1000
LIMIT_DEFAULT = 30

NodeQ = Annotated[list[str], Query(description="only this node's events; repeat for several")]
ActionQ = Annotated[list[str], Query(description="e.g. commission; repeatable")]
ReasonQ = Annotated[list[str], Query(description="CamelCase, e.g. PlaybookFailed; repeatable")]
ResultQ = Annotated[list[str], Query(description="started, succeeded, failed, …; repeatable")]
ActorQ = Annotated[list[str], Query(description="who did it: a token's name, exactly; repeatable")]
SeverityQ = Annotated[
    str | None, Query(description="debug < info < audit < warning < error: this and above")
]
JobQ = Annotated[int | None, Query(ge=1, le=MAX_ID, description="only this job's events")]
SinceQ = Annotated[str | None, Query(description="ISO 8601 time (UTC by default) or 1h, 30m, 7d")]
UntilQ = Annotated[str | None, Query(description="before this time; same forms as since")]
AuditQ = Annotated[
    bool | None, Query(description="true: only the audit trail; false: only the rest")
]
LimitQ = Annotated[int, Query(ge=1, le=LIMIT_MAX, description="events per page, at most 1000")]
BeforeQ = Annotated[int | None, Query(ge=0, le=MAX_ID, description="the page older than this id")]
AfterQ = Annotated[int | None, Query(ge=0, le=MAX_ID, description="the events right after this id")]
FormatQ = Annotated[Literal["json", "text"], Query(description="text: one line per event")]

_FILTERS = {"action", "reason", "result", "actor", "min_severity", "job", "audit"}
_PAGING = {"limit", "before_id", "after_id", "format", "since", "until"}


def only(*allowed: set[str]) -> Callable[[Request], Awaitable[None]]:
    """Refuse a parameter the route does not know: a misspelt filter would otherwise be ignored
    and the reader would take an unfiltered page for a filtered one."""
    known = set().union(*allowed)

    # async, as the filters below: no I/O, and FastAPI would run a plain def in a worker thread,
    # a hop that costs more than the check.
    async def check(request: Request) -> None:
        for name in request.query_params:
            if name not in known:
                raise refuse(
                    name, f"unknown parameter; this route takes {', '.join(sorted(known))}"
                )

    return check


async def _filters(
    node: NodeQ = [],  # noqa: B006  (FastAPI copies defaults per request)
    action: ActionQ = [],  # noqa: B006
    reason: ReasonQ = [],  # noqa: B006
    result: ResultQ = [],  # noqa: B006
    actor: ActorQ = [],  # noqa: B006
    min_severity: SeverityQ = None,
    job: JobQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    audit: AuditQ = None,
) -> TimelineFilter:
    return TimelineFilter.parse(
        nodes=node,
        actions=action,
        reasons=reason,
        results=result,
        actors=actor,
        min_severity=min_severity,
        job_id=job,
        since=since,
        until=until,
        audit=audit,
    )


async def _node_filters(
    action: ActionQ = [],  # noqa: B006
    reason: ReasonQ = [],  # noqa: B006
    result: ResultQ = [],  # noqa: B006
    actor: ActorQ = [],  # noqa: B006
    min_severity: SeverityQ = None,
    job: JobQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    audit: AuditQ = None,
) -> TimelineFilter:
    return await _filters([], action, reason, result, actor, min_severity, job, since, until, audit)


async def _stream_filters(
    node: NodeQ = [],  # noqa: B006
    action: ActionQ = [],  # noqa: B006
    reason: ReasonQ = [],  # noqa: B006
    result: ResultQ = [],  # noqa: B006
    actor: ActorQ = [],  # noqa: B006
    min_severity: SeverityQ = None,
    job: JobQ = None,
    audit: AuditQ = None,
) -> TimelineFilter:
    return await _filters(node, action, reason, result, actor, min_severity, job, audit=audit)


def _render(page: TimelinePage, fmt: str) -> TimelinePage | Response:
    if fmt == "json":
        return page
    # Oldest first, as a ticket reads; the cursors travel in headers.
    lines = [event.line() + "\n" for event in reversed(page.items)]
    headers = {
        name: str(value)
        for name, value in (
            ("X-Next-Before-Id", page.next_before_id),
            ("X-Next-After-Id", page.next_after_id),
            ("X-Oldest-Id", page.oldest_id),
            ("X-Latest-Id", page.latest_id),
        )
        if value is not None
    }
    return PlainTextResponse("".join(lines), headers=headers)


@router.get(
    "/info/timeline",
    response_model=TimelinePage,
    dependencies=[Depends(only(_FILTERS, _PAGING, {"node"}))],
    summary="The cluster's events, newest first, by cursor",
)
def list_timeline(
    db: DbDep,
    _: ViewerDep,
    filters: Annotated[TimelineFilter, Depends(_filters)],
    limit: LimitQ = LIMIT_DEFAULT,
    before_id: BeforeQ = None,
    after_id: AfterQ = None,
    format: FormatQ = "json",
) -> TimelinePage | Response:
    if format == "json" and after_id is None:
        # The most frequent read: answered without the ORM and the response model, with the
        # bytes they would have produced (see app.timeline.pages).
        with pages.connect(db) as connection:
            fast = pages.read_page(
                connection=connection, filters=filters, limit=limit, before_id=before_id
            )
        return Response(fast.json(), media_type="application/json")
    with db.read() as session:
        page = service.list_timeline(
            session=session, filters=filters, limit=limit, before_id=before_id, after_id=after_id
        )
    return _render(page, format)


@router.get(
    "/info/node/{name}/history",
    response_model=TimelinePage,
    dependencies=[Depends(only(_FILTERS, _PAGING))],
    summary="One node's events, newest first; kept after the node is deleted",
)
def node_history(
    name: str,
    db: DbDep,
    _: ViewerDep,
    filters: Annotated[TimelineFilter, Depends(_node_filters)],
    limit: LimitQ = LIMIT_DEFAULT,
    before_id: BeforeQ = None,
    after_id: AfterQ = None,
    format: FormatQ = "json",
) -> TimelinePage | Response:
    with db.read() as session:
        page = service.node_history(
            session=session,
            name=name,
            filters=filters,
            limit=limit,
            before_id=before_id,
            after_id=after_id,
        )
    return _render(page, format)


@router.get(
    "/info/timeline/stream",
    dependencies=[Depends(only(_FILTERS, {"node", "after_id"}))],
    summary="Live events as Server-Sent Events; resume with Last-Event-ID or after_id",
    response_class=EventSourceResponse,
)
async def stream_timeline(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    followers: FollowersDep,
    _: ViewerDep,
    filters: Annotated[TimelineFilter, Depends(_stream_filters)],
    after_id: AfterQ = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    # A reconnecting EventSource sends the header and repeats the URL: the header is newer.
    header = streams.last_event_id(last_event_id, max_id=MAX_ID)
    cursor = header if header is not None else after_id
    events = stream.follow(
        db=db, filters=filters, after_id=cursor, poll_s=settings.timeline_stream_poll_s
    )
    return streams.open_stream(
        request, events, followers=followers, ping=settings.timeline_stream_ping_s
    )


# --- the short way to a page -----------------------------------------------------------------
