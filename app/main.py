"""The app factory and its lifespan: what happens when clusterm starts and stops."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app import db as store
from app.auth import service as auth
from app.config import Settings
from app.errors import install_handlers
from app.health.router import router as health_router
from app.limits import BodyLimit
from app.meta import router as meta_router
from app.nodes.router import router as nodes_router

log = logging.getLogger("clusterm")


def _start(settings: Settings) -> store.Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = settings.effective_database_url
    store.upgrade(url)
    db = store.Database(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    auth.ensure_bootstrap_token(db=db, token_file=settings.admin_token_file)
    return db


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await run_in_threadpool(_start, settings)
        log.info("clusterm ready; data dir %s", settings.data_dir)
        try:
            yield
        finally:
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
    install_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health_router)
    app.include_router(meta_router)
    app.include_router(nodes_router)
    return app
