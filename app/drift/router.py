from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel

from app.auth.deps import OperatorDep, ViewerDep
from app.deps import DriftDep
from app.drift import asking
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
    """The last check that ended, whichever replica ran it."""
    return _read(watch, asking.last_check(watch))


@router.post(
    "/drift/check",
    response_model=CheckRead,
    summary="Check now, on any replica (the leader runs it); 409 CheckRunning at once while a "
    "check runs (nobody waits for it), 503 Unavailable while clusterm is stopping or no "
    "replica leads",
)
async def check_now(watch: DriftDep, who: OperatorDep) -> CheckRead:
    return _read(watch, await asking.ask(watch, actor=who.name))
