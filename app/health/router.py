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
    heads = store.head_revisions()
    try:
        current = store.current_revisions(db.engine)
    except SQLAlchemyError as exc:
        body = {
            "error": "NotReady",
            "message": f"the database cannot be reached: {type(exc).__name__}",
        }
        return JSONResponse(body, status_code=503)
    if current != heads:
        body = {
            "error": "NotReady",
            "message": f"the database is at migration {_names(current)}, not {_names(heads)}; "
            "run `clusterm db upgrade`",
        }
        return JSONResponse(body, status_code=503)
    return {"status": "ready", "migration": _names(current)}


def _names(revisions: set[str]) -> str:
    return ",".join(sorted(revisions)) or "none"
