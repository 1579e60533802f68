"""Liveness and readiness, the only routes without a token (load balancers and probes call them).

Readiness says only ready or not, and this replica's role: a load balancer may send any request
to any ready replica (every replica answers every route)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app import db as store
from app.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(runtime: RuntimeDep) -> dict[str, str] | JSONResponse:
    role = "leader" if runtime.leadership.is_leader else "follower"
    try:
        current = store.current_revisions(runtime.db.engine)
    except SQLAlchemyError as exc:
        body = {
            "status": "not ready",
            "role": role,
            "message": f"the database cannot be reached: {type(exc).__name__}",
        }
        return JSONResponse(body, status_code=503)
    missing = store.head_revisions() - current
    if missing and not store.unknown_revisions(runtime.db.engine):
        # Behind this replica's code (a database restored from an old backup, say).
        body = {
            "status": "not ready",
            "role": role,
            "message": f"the database lacks migration {','.join(sorted(missing))}; "
            "run `clusterm db upgrade`",
        }
        return JSONResponse(body, status_code=503)
    return {"status": "ready", "role": role}
