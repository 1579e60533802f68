"""The app factory and its lifespan: what happens when clusterm starts and stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.cluster.router import router as cluster_router
from app.config import VERSION, Settings
from app.console.router import router as console_router
from app.drift.router import router as drift_router
from app.errors import install_handlers
from app.health.router import router as health_router
from app.jobs.hosts_router import router as job_hosts_router
from app.jobs.router import router as jobs_router
from app.limits import BodyLimit
from app.meta import router as meta_router
from app.metrics.middleware import HttpMetrics
from app.metrics.port import serve_metrics_port
from app.metrics.router import router as metrics_router
from app.nodes.router import router as nodes_router
from app.runtime import Runtime
from app.support.router import router as support_router
from app.timeline.router import router as timeline_router
from app.verbosity.router import router as verbosity_router


def create_app(settings: Settings, *, demo: bool = False) -> FastAPI:
    runtime = Runtime(settings, demo=demo)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The order things start and stop in is the runtime's (see app.runtime). The metrics
        # port (if set) opens first: a port it cannot have stops the start before any work.
        async with (
            serve_metrics_port(settings, lambda: runtime.db, runtime.ended_jobs),
            runtime.run(),
        ):
            yield

    # No public /docs: every route but the health checks needs a token, the API description too
    # (GET /openapi.json with a viewer token).
    app = FastAPI(
        title="clusterm",
        summary="Cluster manager: node inventory, provisioning jobs, timeline, log verbosity",
        version=VERSION,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    # The one thing on app.state: routes reach it through the typed dependencies of app.deps.
    app.state.runtime = runtime
    install_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Added last, so outermost: a request refused for its body size is counted too.
    app.add_middleware(HttpMetrics)
    app.include_router(health_router)
    app.include_router(meta_router)
    app.include_router(nodes_router)
    app.include_router(jobs_router)
    app.include_router(job_hosts_router)
    app.include_router(timeline_router)
    app.include_router(verbosity_router)
    app.include_router(drift_router)
    app.include_router(cluster_router)
    app.include_router(support_router)
    app.include_router(metrics_router)
    app.include_router(console_router)
    return app
