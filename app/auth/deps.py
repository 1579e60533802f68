"""FastAPI dependencies that put a role on a route: `def route(who: OperatorDep)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import service
from app.auth.service import Principal, Role
from app.deps import get_db

# auto_error=False: we raise our own 401, in our error shape, with WWW-Authenticate.
_bearer = HTTPBearer(auto_error=False, description="a token from `clusterm token create`")


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    header = request.headers.get("authorization")
    return service.authenticate(db=get_db(request), authorization=header)


def require(role: Role) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        principal.require(role)
        return principal

    # Read by the auth-matrix test, which checks every route of the app against its role.
    check.required_role = role  # type: ignore[attr-defined]
    return check


ViewerDep = Annotated[Principal, Depends(require(Role.VIEWER))]
OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
