"""The app factory and its lifespan: what happens when clusterm starts and stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app import db as store
from app import files
from app.auth import service as auth
from app.auth.refusals import RefusalLog
from app.config import Settings
from app.demo import start_demo
from app.drift.router import router as drift_router
from app.drift.watch import DriftWatch
from app.errors import install_handlers
from app.health.router import router as health_router
from app.jobs.router import router as jobs_router
from app.jobs.worker import JobManager
from app.limits import BodyLimit
from app.meta import router as meta_router
from app.nodes.router import router as nodes_router
from app.streams import Followers
from app.timeline import retention as timeline_retention
from app.timeline.router import router as timeline_router
from app.verbosity import reverts as verbosity_reverts
from app.verbosity.router import router as verbosity_router
from app.verbosity.service import Verbosity

log = logging.getLogger("clusterm")


def _start(settings: Settings) -> store.Database:
    url = settings.effective_database_url
    # Here as well as in `clusterm serve`: tests and uvicorn users build the app directly.
    files.prepare_data_dir(settings.data_dir, url)
    store.upgrade(url)
    db = store.Database(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    auth.ensure_bootstrap_token(db=db, token_file=settings.admin_token_file)
    return db


def create_app(settings: Settings, *, demo: bool = False) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await run_in_threadpool(_start, settings)
        app.state.jobs = JobManager(db=app.state.db, settings=settings)
        await run_in_threadpool(app.state.jobs.recover)
        if demo:
            await run_in_threadpool(
                start_demo, db=app.state.db, jobs=app.state.jobs, settings=settings
            )
        log.info("clusterm ready; data dir %s", settings.data_dir)
        purger = timeline_retention.Purger(db=app.state.db, settings=settings)
        purger.start()
        # Reverts due while clusterm was down run first thing.
        app.state.verbosity = Verbosity.create(db=app.state.db, settings=settings)
        reverter = asyncio.create_task(verbosity_reverts.run(app.state.verbosity))
        app.state.drift = DriftWatch(db=app.state.db, settings=settings, jobs=app.state.jobs)
        watcher = asyncio.create_task(app.state.drift.run_forever())
        try:
            yield
        finally:
            # The drift watch first, with any check in flight: it could queue a re-join job.
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await run_in_threadpool(app.state.drift.stop)
            # The active job ends as interrupted, its nodes settled, before the store closes.
            await run_in_threadpool(app.state.jobs.shutdown)
            await run_in_threadpool(purger.stop)
            await app.state.verbosity.close(reverter)
            app.state.db.dispose()
            log.info("clusterm stopped")

    # No public /docs: every route but the health checks needs a token, the API description too
    # (GET /openapi.json with a viewer token).
    app = FastAPI(
        title="clusterm",
        summary="Cluster manager: node inventory, provisioning jobs, timeline, log verbosity",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.token_cache = auth.TokenCache()
    app.state.refusals = RefusalLog()  # how often a refused request is recorded
    app.state.followers = Followers(settings.max_stream_followers)  # open live streams
    install_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health_router)
    app.include_router(meta_router)
    app.include_router(nodes_router)
    app.include_router(jobs_router)
    app.include_router(timeline_router)
    app.include_router(verbosity_router)
    app.include_router(drift_router)
    return app
