from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from app.auth.deps import OperatorDep, ViewerDep
from app.deps import DriftDep
from app.drift.watch import Check, DriftWatch

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


def _read(watch: DriftWatch, check: Check) -> CheckRead:
    return CheckRead(
        **vars(check),
        interval_s=watch.settings.drift_interval_s,
        remediate=watch.settings.drift_remediate,
    )


@router.get("/info/drift", response_model=CheckRead)
def last_check(watch: DriftDep, _: ViewerDep) -> CheckRead:
    return _read(watch, watch.last_check())


@router.post(
    "/drift/check",
    response_model=CheckRead,
    summary="Check now; 409 CheckRunning at once while a check runs (nobody waits for it), "
    "503 Unavailable while clusterm is stopping",
)
async def check_now(watch: DriftDep, _: OperatorDep) -> CheckRead:
    return _read(watch, await run_in_threadpool(watch.check))
