"""FastAPI dependencies that put a role on a route: `def route(who: OperatorDep)`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.auth import service
from app.auth.service import Principal
from app.auth.vocabulary import Role
from app.errors import Forbidden
from app.instruments import Refusal, count_refusal
from app.runtime import runtime_of
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity

log = logging.getLogger("clusterm.auth")

# auto_error=False: we raise our own 401, in our error shape, with WWW-Authenticate.
_bearer = HTTPBearer(auto_error=False, description="a token from `clusterm token create`")


async def current_principal(request: Request) -> Principal:
    """Who sent `request`, checked now (through the token cache): Unauthorized otherwise.

    async, with the database read (a cache miss) in a thread: most requests then reach their
    route without a hop to a worker thread for authentication. Live streams call it again while
    they run, so that a revoked token stops its streams too (see `app.streams`).
    """
    header = request.headers.get("authorization")
    runtime = runtime_of(request.app)
    cache = runtime.token_cache
    known = cache.get(service.token_digest(header))
    if known is not None:
        return known
    db = runtime.db
    return await run_in_threadpool(
        lambda: service.authenticate(db=db, authorization=header, cache=cache)
    )


async def _principal(
    request: Request,
    # Declared for the API description (the Bearer scheme); the header is read above.
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await current_principal(request)


def record_refusal(request: Request, principal: Principal, exc: Forbidden) -> None:
    """Put a refused request on the audit trail; never raises (the refusal stands regardless).

    Blocking: call it from a worker thread."""
    try:
        _record_refusal(request, principal, exc)
    except Exception:
        # The refusal stands even if the audit trail cannot be written (a locked or unreachable
        # database): the caller gets its 403, not a 500.
        log.exception("could not record a refused request on the timeline")


def _record_refusal(request: Request, principal: Principal, exc: Forbidden) -> None:
    # A known token trying what its role does not allow is worth an audit trail: a mistyped
    # script, or someone probing. At most one event per token per minute, though (see
    # `refusals`): a loop of refused calls must not flood the timeline. Its own transaction: the
    # refused request changes nothing else.
    runtime = runtime_of(request.app)
    refusals = runtime.refusals
    carried = refusals.admit(principal.name)
    if carried is None:
        return
    note = f"{request.method} {request.url.path} refused: {exc.message}"
    details: dict[str, object] = {
        "method": request.method,
        "path": request.url.path,
        "role": principal.role,
        "required_role": exc.details.get("required_role"),
        "refusals_not_recorded": carried.count,
    }
    if carried.count:
        since = carried.since.isoformat(timespec="seconds") if carried.since else "?"
        details["not_recorded_since"] = since
        note += (
            f" (and {carried.count} earlier refusals of this token since {since}, not recorded "
            "one by one: at most one refusal event per token per minute)"
        )
    try:
        with runtime.db.write() as session:
            timeline.record_event(
                session=session,
                action="authorize",
                reason="Forbidden",
                result=Result.FAILED,
                severity=Severity.AUDIT,
                actor=principal.name,
                note=note,
                details=details,
            )
    except Exception:
        refusals.give_back(principal.name, carried)
        raise


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def check(
        request: Request, principal: Annotated[Principal, Depends(_principal)]
    ) -> Principal:
        try:
            principal.require(role)
        except Forbidden as exc:
            count_refusal(Refusal.FORBIDDEN)
            await run_in_threadpool(record_refusal, request, principal, exc)
            raise
        return principal

    # Read by the auth-matrix test, which checks every route of the app against its role.
    check.required_role = role  # type: ignore[attr-defined]
    return check


ViewerDep = Annotated[Principal, Depends(require(Role.VIEWER))]
OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
