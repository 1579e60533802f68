"""The typed dependencies routes reach the runtime's services through: `def route(jobs: JobsDep)`.

They are `async def` although they do no I/O: FastAPI runs a plain `def` dependency in a worker
thread, and a hop to a thread per dependency cost more than most requests' own work. Each reads
the runtime itself rather than through `RuntimeDep`: one dependency less to resolve per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.db import Database
from app.drift.watch import DriftWatch
from app.followers import Followers
from app.jobs.worker import JobManager
from app.runtime import Runtime, runtime_of
from app.verbosity.service import Verbosity


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request.app)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_db(request: Request) -> Database:
    return runtime_of(request.app).db


async def get_settings(request: Request) -> Settings:
    return runtime_of(request.app).settings


async def get_jobs(request: Request) -> JobManager:
    return runtime_of(request.app).jobs


async def get_verbosity(request: Request) -> Verbosity:
    return runtime_of(request.app).verbosity


async def get_drift(request: Request) -> DriftWatch:
    return runtime_of(request.app).drift


async def get_followers(request: Request) -> Followers:
    return runtime_of(request.app).followers


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
VerbosityDep = Annotated[Verbosity, Depends(get_verbosity)]
DriftDep = Annotated[DriftWatch, Depends(get_drift)]
FollowersDep = Annotated[Followers, Depends(get_followers)]
