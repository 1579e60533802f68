"""Support over HTTP: this replica's recent log, and the support bundle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.auth.deps import OperatorDep
from app.deps import DbDep, RuntimeDep
from app.support import service
from app.support.bundle import Ask, Bundle, Sources, file_name

router = APIRouter(tags=["support"])

MAX_LINE = 2**63 - 1


@router.get("/debug/log", summary="This replica's recent log (text, oldest first)")
async def recent_log(
    runtime: RuntimeDep,
    _: OperatorDep,
    since: Annotated[int, Query(ge=0, le=MAX_LINE, description="only the lines after N")] = 0,
    tail: Annotated[
        int | None, Query(ge=1, le=MAX_LINE, description="only the last N lines")
    ] = None,
) -> Response:
    """The lines this replica logged at the verbosity in effect, kept in memory within
    `own_log_ring_bytes`. Each replica serves its own (X-Clusterm-Replica); continue with
    `since` = X-Clusterm-Next-Line - 1. A `since` below X-Clusterm-First-Line - 1 missed lines
    the ring has dropped."""
    piece = runtime.log_ring.read(since=since, tail=tail)
    body = "".join(f"{line}\n" for line in piece.lines)
    headers = {
        "X-Clusterm-Replica": runtime.identity.replica_id,
        "X-Clusterm-First-Line": str(piece.first_line),
        "X-Clusterm-Next-Line": str(piece.next_line),
    }
    return Response(body, media_type="text/plain; charset=utf-8", headers=headers)


@router.get("/support/bundle", summary="A .tar.gz of what support asks for first")
def support_bundle(
    request: Request,
    runtime: RuntimeDep,
    db: DbDep,
    who: OperatorDep,
    since: Annotated[
        str,
        Query(max_length=64, description="the timeline's window: 7d, 24h, or an ISO 8601 time"),
    ] = "7d",
) -> StreamingResponse:
    """Versions, redacted settings, verbosity, drift, nodes (as a viewer sees them), every
    replica's recent log, the timeline since `since` and the newest jobs with their logs, within
    `support_bundle_max_bytes`; README.txt inside says what each file is and what was left out."""
    sources = Sources(
        db=db,
        settings=runtime.settings,
        verbosity=runtime.verbosity,
        ring=runtime.log_ring,
        replica_id=runtime.identity.replica_id,
    )
    ask = Ask(since=since, actor=who.name, authorization=request.headers.get("authorization"))
    bundle = Bundle(sources, ask)  # a bad `since` is a 422 here, before anything is sent
    service.record_download(db=db, actor=who.name, since=since, replica=sources.replica_id)
    headers = {
        "Content-Disposition": f'attachment; filename="{file_name(bundle.now)}"',
        "X-Clusterm-Replica": sources.replica_id,
    }
    return StreamingResponse(bundle.stream(), media_type="application/gzip", headers=headers)
