"""The API's own description and what this replica runs, behind a viewer token like everything
but the health checks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from app import versions as versions_service
from app.auth.deps import ViewerDep
from app.deps import DbDep
from app.tables import TEXT_MEDIA_TYPE, TEXT_RESPONSE, render_table, wants_text

router = APIRouter(tags=["meta"])


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: ViewerDep) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get(
    "/version",
    response_model=dict[str, str],
    responses=TEXT_RESPONSE,
    summary="What this replica runs: clusterm, Python, ansible-core, ansible-runner, the "
    "database and its schema revision",
)
def get_version(
    db: DbDep,
    _: ViewerDep,
    format: Annotated[Literal["json", "text"] | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> dict[str, str] | Response:
    found = versions_service.versions(db)
    if wants_text(format, accept):
        body = render_table(["NAME", "VERSION"], found.items())
        return Response(body, media_type=TEXT_MEDIA_TYPE)
    return found
