from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from app.auth.deps import OperatorDep, ViewerDep
from app.drift.watch import Check, DriftWatch
from app.errors import NotFound

router = APIRouter(tags=["drift"])


class CheckRead(BaseModel):
    at: dt.datetime
    outcome: str
    message: str
    master: str | None
    missing: list[str]
    remediation_jobs: list[int]
    interval_s: float
    remediate: bool


def _watch(request: Request) -> DriftWatch:
    watch: DriftWatch = request.app.state.drift
    return watch


def _read(watch: DriftWatch, check: Check) -> CheckRead:
    return CheckRead(
        **vars(check),
        interval_s=watch.settings.drift_interval_s,
        remediate=watch.settings.drift_remediate,
    )


@router.get("/info/drift", response_model=CheckRead)
def last_check(request: Request, _: ViewerDep) -> CheckRead:
    watch = _watch(request)
    if watch.last is None:
        raise NotFound(
            "no drift check has run yet; one runs every drift_interval_s "
            f"({watch.settings.drift_interval_s:g} s), or now with POST /drift/check"
        )
    return _read(watch, watch.last)


@router.post(
    "/drift/check",
    response_model=CheckRead,
    summary="Check now; 409 CheckRunning at once while a check runs (nobody waits for it)",
)
async def check_now(request: Request, _: OperatorDep) -> CheckRead:
    watch = _watch(request)
    return _read(watch, await run_in_threadpool(watch.check))
