"""Liveness and readiness, the only routes without a token (load balancers and probes call them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app import db as store
from app.deps import DbDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(db: DbDep) -> dict[str, str] | JSONResponse:
    head = store.head_revision()
    try:
        current = store.current_revision(db.engine)
    except SQLAlchemyError as exc:
        body = {
            "error": "NotReady",
            "message": f"the database cannot be reached: {type(exc).__name__}",
        }
        return JSONResponse(body, status_code=503)
    if current != head:
        body = {
            "error": "NotReady",
            "message": f"the database is at migration {current}, not {head}; "
            "run `clusterm db upgrade`",
        }
        return JSONResponse(body, status_code=503)
    return {"status": "ready", "migration": str(current)}
