"""FastAPI dependencies that put a role on a route: `def route(who: OperatorDep)`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import service
from app.auth.service import Principal, Role
from app.deps import get_db
from app.errors import Forbidden
from app.timeline import service as timeline

log = logging.getLogger("clusterm.auth")

# auto_error=False: we raise our own 401, in our error shape, with WWW-Authenticate.
_bearer = HTTPBearer(auto_error=False, description="a token from `clusterm token create`")


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    header = request.headers.get("authorization")
    return service.authenticate(db=get_db(request), authorization=header)


def _record_refusal(request: Request, principal: Principal, exc: Forbidden) -> None:
    # A known token trying what its role does not allow is worth an audit trail: a mistyped
    # script, or someone probing. Its own transaction: the refused request changes nothing else.
    with get_db(request).write() as session:
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


def require(role: Role) -> Callable[..., Principal]:
    def check(request: Request, principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        try:
            principal.require(role)
        except Forbidden as exc:
            try:
                _record_refusal(request, principal, exc)
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
