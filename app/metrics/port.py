"""The metrics port (setting `metrics_port`): GET /metrics without a token, for a scraper that
holds none, on its own address (`metrics_host`), beside the API.

Served by prometheus_client's WSGI app on the standard library's threading server, in threads of
its own, rather than by a second uvicorn server: uvicorn's `serve` takes over the process's
signal handlers, which belong to the API's server, and a thread per scrape keeps a scrape
(a database read) off the event loop. Only /metrics answers; any other path is a 404.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import generate_latest
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.db import Database
from app.jobs.stats import EndedJobs
from app.metrics.collector import choose_format, metrics_registry

log = logging.getLogger("clusterm.metrics")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class MetricsPortError(RuntimeError):
    """The metrics port cannot be opened; the message names the settings."""


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes come every few seconds: not worth a log line each."""


def _only_metrics(app: WsgiApp) -> WsgiApp:
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/metrics":
            accept = environ.get("HTTP_ACCEPT")
            if accept and choose_format(accept)[0] is generate_latest:
                # What prometheus_client's app would fail on, or answer in the text format anyway.
                environ = {k: v for k, v in environ.items() if k != "HTTP_ACCEPT"}
            return app(environ, start_response)
        body = b"only /metrics is served on this port; the API is on clusterm's main port\n"
        start_response(
            "404 Not Found",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return serve


def _server_class(host: str, port: int) -> type[ThreadingWSGIServer]:
    # The standard library's server binds IPv4 only: take the family of the address given.
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    return Server


def _unavailable(host: str, port: int, exc: OSError) -> MetricsPortError:
    return MetricsPortError(
        f"invalid setting metrics_port/metrics_host (CLUSTERM_METRICS_PORT, "
        f"CLUSTERM_METRICS_HOST): cannot listen on {host}:{port}: {exc.strerror or exc}; "
        "stop what holds that port, or set another metrics_port (or metrics_host)"
    )


def check_metrics_port(settings: Settings) -> None:
    """MetricsPortError unless the metrics port (if set) can be had now, bound as the server
    binds it (SO_REUSEADDR, the address's own family): `clusterm serve` asks before it touches
    the database, since a failure inside uvicorn's lifespan comes as a traceback and exit 0."""
    host, port = settings.metrics_host, settings.metrics_port
    if port is None:
        return
    try:
        with socket.socket(_server_class(host, port).address_family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise _unavailable(host, port, exc) from None


def _open(
    settings: Settings, db: Callable[[], Database], ended_jobs: EndedJobs
) -> ThreadingWSGIServer:
    host, port = settings.metrics_host, settings.metrics_port
    assert port is not None
    app = _only_metrics(make_wsgi_app(metrics_registry(db, ended_jobs)))
    try:
        return make_server(host, port, app, _server_class(host, port), handler_class=_Quiet)
    except OSError as exc:
        raise _unavailable(host, port, exc) from None


@asynccontextmanager
async def serve_metrics_port(
    settings: Settings, db: Callable[[], Database], ended_jobs: EndedJobs
) -> AsyncIterator[None]:
    """Serve /metrics on the metrics port while the block runs (nothing when it is not set);
    `ended_jobs`: the totals of the ended jobs the app keeps between scrapes."""
    if settings.metrics_port is None:
        yield
        return
    try:
        server = await run_in_threadpool(_open, settings, db, ended_jobs)
    except MetricsPortError as exc:
        log.error("%s", exc)  # one readable line above the traceback uvicorn logs
        raise
    thread = threading.Thread(
        target=server.serve_forever, name="metrics-port", kwargs={"poll_interval": 0.5}
    )
    thread.start()
    log.info("serving /metrics without a token on %s:%d", *server.server_address[:2])
    try:
        yield
    finally:
        await run_in_threadpool(_close, server, thread)


def _close(server: ThreadingWSGIServer, thread: threading.Thread) -> None:
    server.shutdown()  # waits for serve_forever to return
    server.server_close()
    thread.join()
