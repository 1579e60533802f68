"""The API's own description, behind a viewer token like everything but the health checks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.auth.deps import ViewerDep

router = APIRouter(tags=["meta"])


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: ViewerDep) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema
