"""FastAPI dependencies that put a role on a route: `def route(who: OperatorDep)`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.auth import service
from app.auth.service import Principal, Role
from app.db import Database
from app.errors import Forbidden
from app.timeline import service as timeline

log = logging.getLogger("clusterm.auth")

# auto_error=False: we raise our own 401, in our error shape, with WWW-Authenticate.
_bearer = HTTPBearer(auto_error=False, description="a token from `clusterm token create`")


async def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # async, with the database read (a cache miss) in a thread: most requests then reach their
    # route without a hop to a worker thread for authentication.
    header = request.headers.get("authorization")
    cache: service.TokenCache = request.app.state.token_cache
    known = cache.get(service.token_digest(header))
    if known is not None:
        return known
    db = request.app.state.db
    return await run_in_threadpool(
        lambda: service.authenticate(db=db, authorization=header, cache=cache)
    )


def _record_refusal(request: Request, principal: Principal, exc: Forbidden) -> None:
    # A known token trying what its role does not allow is worth an audit trail: a mistyped
    # script, or someone probing. Its own transaction: the refused request changes nothing else.
    db: Database = request.app.state.db
    with db.write() as session:
        timeline.record_event(
            session=session,
            action="authorize",
            reason="Forbidden",
            result="failed",
            severity="audit",
            actor=principal.name,
            note=f"{request.method} {request.url.path} refused: {exc.message}",
            details={
                "method": request.method,
                "path": request.url.path,
                "role": str(principal.role),
                "required_role": exc.details.get("required_role"),
            },
        )


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def check(
        request: Request, principal: Annotated[Principal, Depends(_principal)]
    ) -> Principal:
        try:
            principal.require(role)
        except Forbidden as exc:
            try:
                await run_in_threadpool(_record_refusal, request, principal, exc)
            except Exception:
                # The refusal stands even if the audit trail cannot be written (a locked or
                # unreachable database): the caller gets its 403, not a 500.
                log.exception("could not record a refused request on the timeline")
            raise
        return principal

    # Read by the auth-matrix test, which checks every route of the app against its role.
    check.required_role = role  # type: ignore[attr-defined]
    return check


ViewerDep = Annotated[Principal, Depends(require(Role.VIEWER))]
OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
