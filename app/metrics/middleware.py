"""Every HTTP request counted and timed, by its route template (clusterm_http_requests_total,
clusterm_http_request_duration_seconds).

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which would run the app in a task and pass
the response body through a queue: the live streams must go out as they are written.

The route label is the template of the route that matched (`/jobs/{job_id}`), which the router
leaves in the request's scope, never the path a client sent: a client must not be able to make
new time series. A request no route matched (an unknown path, a body refused before routing) is
counted under `unmatched`, a method outside the usual ones under `other`.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import instruments


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any response: the server answers 500
        counted = False

        def count() -> None:
            nonlocal counted
            counted = True
            method = scope["method"]
            if method not in instruments.HTTP_METHODS:
                method = instruments.OTHER_METHOD
            route = getattr(scope.get("route"), "path", None)
            if not isinstance(route, str):
                route = instruments.UNMATCHED
            requests, duration = _series(method, route, status)
            requests.inc()
            duration.observe(time.perf_counter() - started)

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the response's end goes out: a client that has read it and
                # then scrapes finds its request counted.
                count()
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            if not counted:  # no complete response: an error, or a client gone mid-stream
                count()


# Each label set's series, kept: prometheus_client's labels() checks its arguments and takes a
# lock on every call, a tenth of what a request to /healthz costs. Methods, route templates and
# the statuses the app answers with are few; the bound is there all the same.
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_MAX_SERIES = 4096


def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    key = (method, route, status)
    found = _SERIES.get(key)
    if found is None:
        found = (
            instruments.HTTP_REQUESTS.labels(method, route, str(status)),
            instruments.HTTP_DURATION.labels(method, route),
        )
        if len(_SERIES) < _MAX_SERIES:
            _SERIES[key] = found
    return found
