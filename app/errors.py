"""One error hierarchy for the whole daemon, mapped to one JSON shape.

    ClustermError (500)
    ├── Invalid (422)             bad input: a duplicate in a batch, a null where a value is needed
    │   └── ValidationFailed      a field that breaks its schema (names each field and why)
    ├── Unauthorized (401)        no token, or one we do not know
    ├── Forbidden (403)           a known token whose role is too low
    ├── NotFound (404)
    │   └── NodeNotFound
    ├── Conflict (409)
    │   ├── NodeExists
    │   ├── IllegalTransition     the lifecycle state machine refused an event
    │   └── JobActive             a job is running; one at a time
    ├── Gone (410)                it existed, and is no longer kept (an old job's log)
    ├── PayloadTooLarge (413)
    ├── Misconfigured (503)       a setting the request needs is wrong (a missing playbook)
    ├── Unavailable (503)         not now, but soon: sent with Retry-After (seconds)
    │   └── DatabaseBusy          the database is locked, or its connection was lost
    └── UpstreamError (502)
        └── UpstreamTimeout (504)

Every body is `{"error": <class name>, "message": <what was wrong and what to do>, ...details}`.
Services raise these; they never import FastAPI. `install_handlers` maps the tree (Starlette looks
handlers up along the MRO, so one handler serves every subclass) and FastAPI's own validation and
routing errors onto the same shape, and turns anything unexpected into a bodyless-of-secrets 500.

A database that is busy for longer than a request may wait is not a bug: SQLite's write lock held
past `sqlite_busy_timeout_ms` by another process (a backup, a second daemon, `sqlite3` at a prompt),
or on PostgreSQL a lock or statement timeout, a serialization failure or deadlock, a server shutting
down or out of connections. Each rolls the request's transaction back, so it is a 503
`DatabaseBusy` with `Retry-After`: the same request, sent again, is the right thing to do. A
connection that broke off is a 503 too, but may have broken during a commit the server carried
out, and its message says to check first. Any other database error stays a 500.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("clusterm.errors")


class ClustermError(Exception):
    status_code = 500
    code: str | None = None  # defaults to the class name

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def error(self) -> str:
        return self.code or type(self).__name__

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.details}


class Invalid(ClustermError):
    status_code = 422


class ValidationFailed(Invalid):
    """Schema errors found by pydantic outside FastAPI's own parsing."""

    @classmethod
    def from_errors(cls, errors: Any, *, prefix: str = "") -> ValidationFailed:
        message, fields = describe_validation(errors, prefix=prefix)
        return cls(message, fields=fields)


class Unauthorized(ClustermError):
    status_code = 401


class Forbidden(ClustermError):
    status_code = 403


class NotFound(ClustermError):
    status_code = 404


class NodeNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no node named {name!r}; list the nodes with GET /info/nodes", node=name)


class Conflict(ClustermError):
    status_code = 409


class NodeExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"a node named {name!r} already exists; change it with PATCH /nodes/{name} "
            "or pick another name",
            node=name,
        )


class IllegalTransition(Conflict):
    def __init__(self, *, node: str, state: str, event: str, allowed: list[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"node {node!r} is {state}: {event} is not allowed from {state} "
            f"(allowed from {state}: {allowed_text})",
            node=node,
            state=state,
            transition=event,
        )


class JobActive(Conflict):
    def __init__(self, *, job_id: int, kind: str) -> None:
        super().__init__(
            f"job {job_id} ({kind}) is active; one job runs at a time: wait for it to end "
            "(GET /info/job/active) or cancel it (POST /info/job/active/cancel)",
            job_id=job_id,
            kind=kind,
        )


class Gone(ClustermError):
    """What was asked for existed and was let go of by a retention setting (named in the body)."""

    status_code = 410


class PayloadTooLarge(ClustermError):
    status_code = 413


class Misconfigured(ClustermError):
    status_code = 503


class Unavailable(ClustermError):
    """Try again later: the response carries `Retry-After: <retry_after_s>`."""

    status_code = 503

    def __init__(self, message: str, *, retry_after_s: int = 1, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class DatabaseBusy(Unavailable):
    pass


class UpstreamError(ClustermError):
    status_code = 502


class UpstreamTimeout(UpstreamError):
    status_code = 504


NOT_JSON = (
    "the body must be JSON, sent with Content-Type: application/json; "
    "with curl use --json or -H 'Content-Type: application/json'"
)


def _headers(exc: ClustermError) -> dict[str, str] | None:
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, Unavailable):
        return {"Retry-After": str(exc.retry_after_s)}
    return None


# SQLite's primary result codes for "another connection holds the lock" (sqlite3 gives the
# extended code; its low byte is the primary one).
_SQLITE_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
# PostgreSQL SQLSTATEs after which the same request, sent again, can succeed, and the seconds to
# wait: a lock or a conflict clears in a moment, a server coming back takes longer. All of them
# roll the transaction back.
_PG_RETRYABLE = {
    "40001": ("a concurrent transaction conflicted with this one (serialization failure)", 1),
    "40P01": ("a concurrent transaction deadlocked with this one", 1),
    "55P03": ("a lock it needed was held past the lock timeout", 1),
    "57014": ("the statement ran past the statement timeout", 5),
    "53300": ("the server has no free connection", 5),
    "57P01": ("the server is shutting down", 5),
    "57P02": ("the server is restarting after a crash", 5),
    "57P03": ("the server is starting up", 5),
}
# A connection that broke (SQLSTATE class 08, or lost under the driver) may have broken during a
# COMMIT that the server carried out: the client is told to check before it repeats a change.
_CONNECTION_LOST = (
    "the connection to the database broke off; if this request changes something, check "
    "whether the change was made (a repeated one is refused with 409) before sending it again "
    "after Retry-After seconds"
)


def database_busy(exc: sa_exc.OperationalError) -> DatabaseBusy | None:
    """The 503 a transient database error deserves, or None for a real failure (a 500).

    Only the driver's own message is kept: SQLAlchemy's text of the error holds the statement's
    bound parameters, which can be secrets.
    """
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        text = str(orig)
        if (code is not None and code & 0xFF in _SQLITE_BUSY_CODES) or (
            "database is locked" in text or "database is busy" in text
        ):
            return DatabaseBusy(
                "the database is busy: another process holds SQLite's write lock for longer "
                "than clusterm waits for it (setting sqlite_busy_timeout_ms); nothing was "
                "changed: send the same request again after Retry-After seconds",
                retry_after_s=1,
            )
        return None
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate in _PG_RETRYABLE:
        reason, retry_after_s = _PG_RETRYABLE[sqlstate]
        return DatabaseBusy(
            f"the database could not serve this request: {reason}; nothing was changed: send "
            "the same request again after Retry-After seconds",
            retry_after_s=retry_after_s,
            sqlstate=sqlstate,
        )
    if exc.connection_invalidated or (isinstance(sqlstate, str) and sqlstate.startswith("08")):
        return DatabaseBusy(_CONNECTION_LOST, retry_after_s=5)
    return None


def _field_name(loc: tuple[Any, ...], prefix: str = "") -> str:
    # ("body", "nodes", 0, "name") -> "nodes[0].name"; ("query", "limit") -> "limit"
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def describe_validation(errors: Any, *, prefix: str = "") -> tuple[str, list[dict[str, str]]]:
    """Turn pydantic errors into one readable message plus a per-field list."""
    fields = []
    for err in errors:
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field; remove it (GET /openapi.json lists the fields)"
        fields.append({"field": _field_name(tuple(err.get("loc", ())), prefix), "reason": msg})
    message = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:5])
    if len(fields) > 5:
        message += f"; and {len(fields) - 5} more"
    return message or "the request is not valid", fields


def _hide_sql_parameters(exc: BaseException) -> None:
    # SQLAlchemy's text of a failed statement shows its bound parameters (token hashes, node vars,
    # passwords). The daemon's engines are made with hide_parameters already (app.db); this also
    # covers an error from any other engine, so no log line that formats one shows them.
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        if isinstance(current, sa_exc.StatementError):
            current.hide_parameters = True
        current = current.__cause__ or current.__context__


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClustermError)
    async def clusterm_error(_: Request, exc: ClustermError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=_headers(exc))

    @app.exception_handler(sa_exc.OperationalError)
    async def database_error(request: Request, exc: sa_exc.OperationalError) -> JSONResponse:
        busy = database_busy(exc)
        if busy is None:
            raise exc  # a real failure: the 500 below logs it with its traceback
        log.warning(
            "%s %s: %s (%s: %s)",
            request.method,
            request.url.path,
            busy.error,
            type(exc.orig).__name__,
            str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "",
        )
        return await clusterm_error(request, busy)

    @app.exception_handler(sa_exc.TimeoutError)
    async def pool_exhausted(request: Request, exc: sa_exc.TimeoutError) -> JSONResponse:
        # Every pooled connection is in use for longer than the pool waits for one.
        log.warning("%s %s: no free database connection", request.method, request.url.path)
        busy = DatabaseBusy(
            "every database connection is in use; nothing was changed: send the same request "
            "again after Retry-After seconds",
            retry_after_s=1,
        )
        return await clusterm_error(request, busy)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        body_errors = [e for e in exc.errors() if tuple(e.get("loc", ()))[:1] == ("body",)]
        if body_errors and content_type and "json" not in content_type:
            return JSONResponse(
                {"error": "ValidationFailed", "message": NOT_JSON, "fields": []}, status_code=422
            )
        message, fields = describe_validation(exc.errors())
        body = {"error": "ValidationFailed", "message": message, "fields": fields}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            detail = "no such route; the API is described at GET /openapi.json"
        elif exc.status_code == 400 and "parsing the body" in detail:
            # FastAPI's words when the JSON parser gives up (e.g. nesting too deep).
            detail = "the body could not be parsed; send one JSON document, not nested too deep"
        body = {"error": names.get(exc.status_code, "HTTPError"), "message": detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback for us; the client gets no internals.
        _hide_sql_parameters(exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = {
            "error": "InternalError",
            "message": "clusterm failed to handle this request; the daemon's log has the cause",
        }
        return JSONResponse(body, status_code=500)
