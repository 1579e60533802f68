"""Verbosity over HTTP: Kubernetes' `/debug/flags/v` contract for clusterm itself and, through the
proxy route, for each component; the fan-out, the known levels and the resets.

Fan-out answers say how it went in the status: 200 every target succeeded, 207 some did, 502
none did; the body always holds one result per target. A request naming a node the component
cannot be reached on (docs/verbosity.md) is 409 with nothing sent, as an unknown node is 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.auth.deps import OperatorDep, ViewerDep
from app.deps import DbDep, VerbosityDep
from app.errors import Invalid, NodeNotFound
from app.nodes.schemas import check_node_name
from app.tables import TEXT_MEDIA_TYPE, TEXT_RESPONSE, wants_text
from app.verbosity import components, own_level, service, views
from app.verbosity.flags import SUCCESS, UNSUPPORTED_METHOD, BadFlagValue, parse_level, parse_ttl
from app.verbosity.forward import Outcome
from app.verbosity.schemas import (
    ChangeReport,
    ComponentRead,
    LevelRead,
    OwnLevelRead,
    VerbosityChange,
)
from app.verbosity.service import Verbosity

router = APIRouter(tags=["verbosity"])

TtlQuery = Annotated[
    str | None,
    Query(max_length=32, description="revert after this long (90s, 15m, 1h30m); 0: never"),
]
COMPONENT_BODY_MAX = 4096


def _known_name(name: str) -> str:
    # A name no node can have is refused before it reaches the database (PostgreSQL rejects a NUL
    # byte with an error, which must not become a 500).
    try:
        return check_node_name(name)
    except ValueError:
        raise NodeNotFound(name[:253]) from None


def _text(status: int, text: str) -> Response:
    # Exactly what a Kubernetes component sends: `text/plain` with no charset, and nosniff
    # (see docs/contracts.md#flags-endpoint).
    headers = {"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"}
    return Response(content=text.encode(), status_code=status, headers=headers)


def _ttl(ctx: Verbosity, ttl: str | None) -> int:
    settings = ctx.settings
    return parse_ttl(
        ttl, default_s=settings.verbosity_default_ttl_s, max_s=settings.verbosity_max_ttl_s
    )


def _report_status(report: ChangeReport) -> int:
    if report.failed == 0:
        return 200
    return 207 if report.succeeded else 502


def _report(report: ChangeReport) -> Response:
    # Serialised by pydantic in one pass: a report names every node, and building it as Python
    # objects first for json.dumps costs several times as much on the event loop.
    return Response(
        report.model_dump_json(),
        status_code=_report_status(report),
        media_type="application/json",
    )


# --- clusterm's own level ----------------------------------------------------------------------


@router.get("/debug/flags/v", response_model=OwnLevelRead)
async def get_own(request: Request, ctx: VerbosityDep, _: ViewerDep) -> Response:
    """The current level as text (`2`), or with `Accept: application/json` who set it and when
    it reverts. Kubernetes cannot do this; clusterm can."""
    state = ctx.own.state
    if "application/json" in request.headers.get("accept", ""):
        body = OwnLevelRead(
            level=state.level,
            baseline_level=ctx.own.baseline,
            set_by=state.set_by,
            set_at=state.set_at,
            revert_to=state.revert_to,
            reverts_at=state.reverts_at,
        )
        return JSONResponse(body.model_dump(mode="json"))
    return _text(200, f"{state.level}\n")


ReplicasQuery = Annotated[
    str | None,
    Query(
        max_length=32,
        description=f"{own_level.ALL!r}: every replica, not only the one answering",
    ),
]


@router.put("/debug/flags/v", response_class=Response)
async def put_own(
    request: Request,
    ctx: VerbosityDep,
    who: OperatorDep,
    ttl: TtlQuery = None,
    replicas: ReplicasQuery = None,
) -> Response:
    """Kubernetes' contract: the raw level as the body; `?ttl=10m` reverts it by itself. It sets
    the replica that answers; `?replicas=all` every replica. The header X-Clusterm-Replicas says
    how many replicas were asked (the body stays Kubernetes' own)."""
    if replicas is not None and replicas != own_level.ALL:
        raise Invalid(
            f"replicas: {replicas[:32]!r} is not {own_level.ALL!r}, the one value it takes "
            "(leave it out to change only the replica that answers)",
            field="replicas",
        )
    try:
        level = parse_level(await request.body())
    except BadFlagValue as exc:
        return _text(400, exc.text)
    asked = await own_level.set_own(
        ctx=ctx,
        level=level,
        ttl_s=_ttl(ctx, ttl),
        actor=who.name,
        everywhere=replicas == own_level.ALL,
    )
    response = _text(200, SUCCESS.format(level))
    response.headers["X-Clusterm-Replicas"] = str(asked)
    return response


@router.api_route(
    "/debug/flags/v",
    methods=["POST", "PATCH", "DELETE"],
    response_class=Response,
    include_in_schema=False,
)
async def other_own(_: ViewerDep) -> Response:
    return _text(406, UNSUPPORTED_METHOD)


# --- one component on one node, for curl ------------------------------------------------------


def _proxied(outcome: Outcome, *, component: str, node: str) -> Response:
    if outcome.upstream and not outcome.refused:
        # The component's own answer, unchanged, so scripts parsing it keep working.
        headers = {"X-Content-Type-Options": "nosniff"}
        if outcome.content_type:
            headers["Content-Type"] = outcome.content_type
        return Response(content=outcome.body, status_code=outcome.status, headers=headers)
    body: dict[str, Any] = {"message": outcome.message, "component": component, "node": node}
    if outcome.refused:
        body["error"] = "ComponentRefused"
        body["component_status"] = outcome.status
        body["component_body"] = outcome.body[:COMPONENT_BODY_MAX].decode(errors="replace")
    else:
        names = {
            504: "UpstreamTimeout",
            502: "UpstreamError",
            404: "NotFound",
            422: "Invalid",
            409: "Conflict",
        }
        body["error"] = names.get(outcome.status, "UpstreamError")
    return JSONResponse({"error": body.pop("error"), **body}, status_code=outcome.status)


@router.put("/proxy/{component}/{node}/debug/flags/v", response_class=Response)
async def put_component(
    component: str,
    node: str,
    request: Request,
    ctx: VerbosityDep,
    who: OperatorDep,
    ttl: TtlQuery = None,
) -> Response:
    """Forward Kubernetes' `PUT /debug/flags/v` to `component` on `node` and pass its answer on.

    The value is checked first and a bad one never leaves clusterm; an unknown node or component
    is 404, and a node the component does not run on (another group, registered, decommissioned)
    409, with nothing sent."""
    try:
        level = parse_level(await request.body())
    except BadFlagValue as exc:
        return _text(400, exc.text)
    ttl_s = _ttl(ctx, ttl)
    ctx.registry.get(component)
    node = _known_name(node)
    _, outcomes = await service.change(
        ctx=ctx, component=component, selection=[node], level=level, ttl_s=ttl_s, actor=who.name
    )
    return _proxied(outcomes[0], component=component, node=node)


@router.api_route(
    "/proxy/{component}/{node}/debug/flags/v",
    methods=["GET", "POST", "PATCH", "DELETE"],
    response_class=Response,
    include_in_schema=False,
)
async def other_component(component: str, node: str, _: ViewerDep) -> Response:
    return _text(406, UNSUPPORTED_METHOD)


# --- many nodes ----------------------------------------------------------------------------------


@router.post(
    "/verbosity",
    response_model=ChangeReport,
    responses={207: {"model": ChangeReport}, 502: {"model": ChangeReport}},
)
async def post_verbosity(change: VerbosityChange, ctx: VerbosityDep, who: OperatorDep) -> Response:
    """Set a component's level on many nodes at once; 200 all, 207 some, 502 none succeeded."""
    if change.component not in ctx.registry.components:
        known = ", ".join(ctx.registry.components)
        raise Invalid(f"component: {change.component!r} is not one of {known}", field="component")
    ttl_s = parse_ttl(
        change.ttl,
        default_s=ctx.settings.verbosity_default_ttl_s,
        max_s=ctx.settings.verbosity_max_ttl_s,
    )
    report, _ = await service.change(
        ctx=ctx,
        component=change.component,
        selection=change.nodes,
        level=change.level,
        ttl_s=ttl_s,
        actor=who.name,
    )
    return _report(report)


FormatQuery = Annotated[
    Literal["json", "text"] | None, Query(description="text: a table (or Accept: text/plain)")
]
AcceptHeader = Annotated[str | None, Header()]


@router.get("/verbosity", response_model=list[LevelRead], responses=TEXT_RESPONSE)
def list_levels(
    db: DbDep,
    ctx: VerbosityDep,
    _: ViewerDep,
    component: Annotated[str | None, Query(max_length=64)] = None,
    node: Annotated[str | None, Query(max_length=253)] = None,
    format: FormatQuery = None,
    accept: AcceptHeader = None,
) -> list[LevelRead] | Response:
    """Every level clusterm has set: by whom, when, and when it reverts."""
    if node is not None:
        node = _known_name(node)
    with db.read() as session:
        levels = service.list_levels(session=session, ctx=ctx, component=component, node=node)
    if wants_text(format, accept):
        return Response(views.levels_text(levels), media_type=TEXT_MEDIA_TYPE)
    return levels


@router.get("/verbosity/components", response_model=list[ComponentRead], responses=TEXT_RESPONSE)
def list_components(
    ctx: VerbosityDep, _: ViewerDep, format: FormatQuery = None, accept: AcceptHeader = None
) -> list[ComponentRead] | Response:
    """The components clusterm reaches and how: whether credentials are configured, never
    what they are or where they are kept; `clusterctl verbosity rbac` turns this into RBAC."""
    found = components.list_components(registry=ctx.registry)
    if wants_text(format, accept):
        return Response(views.components_text(found), media_type=TEXT_MEDIA_TYPE)
    return found


@router.delete("/verbosity", response_model=ChangeReport)
async def reset_levels(
    ctx: VerbosityDep,
    who: OperatorDep,
    component: Annotated[str | None, Query(max_length=64)] = None,
    node: Annotated[list[str] | None, Query(max_length=1000)] = None,
) -> Response:
    """Revert now every level clusterm has raised (optionally one component's, or some nodes')."""
    node = [_known_name(n) for n in node] if node else None
    report = await service.reset(ctx=ctx, component=component, nodes=node, actor=who.name)
    return _report(report)


@router.delete("/verbosity/{component}/{node}", response_model=ChangeReport)
async def reset_level(component: str, node: str, ctx: VerbosityDep, who: OperatorDep) -> Response:
    """Revert now: to the pending revert's level, else the baseline (even one set by hand)."""
    node = _known_name(node)
    report = await service.reset(ctx=ctx, component=component, nodes=[node], actor=who.name)
    return _report(report)
