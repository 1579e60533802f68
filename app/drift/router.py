from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel

from app.auth.deps import OperatorDep, ViewerDep
from app.deps import DriftDep
from app.drift import asking
from app.drift.watch import Check, DriftWatch
from app.tables import TEXT_MEDIA_TYPE, TEXT_RESPONSE, render_table, wants_text

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


CHECK_HEADERS = (
    "CHECKED AT",
    "OUTCOME",
    "MASTER",
    "MISSING",
    "RE-JOIN JOBS",
    "EVERY",
    "REMEDIATE",
    "MESSAGE",
)


def _check_text(check: CheckRead) -> str:
    # The message last: it is the long cell, and the others stay aligned before it.
    row = (
        check.at,
        check.outcome,
        check.master,
        check.missing,
        check.remediation_jobs,
        f"{check.interval_s:g}s",
        check.remediate,
        check.message,
    )
    return render_table(CHECK_HEADERS, [row])


@router.get("/info/drift", response_model=CheckRead, responses=TEXT_RESPONSE)
def last_check(
    watch: DriftDep,
    _: ViewerDep,
    format: Annotated[
        Literal["json", "text"] | None, Query(description="text: a table (or Accept: text/plain)")
    ] = None,
    accept: Annotated[str | None, Header()] = None,
) -> CheckRead | Response:
    """The last check that ended, whichever replica ran it."""
    check = _read(watch, asking.last_check(watch))
    if wants_text(format, accept):
        return Response(_check_text(check), media_type=TEXT_MEDIA_TYPE)
    return check


@router.post(
    "/drift/check",
    response_model=CheckRead,
    summary="Check now, on any replica (the leader runs it); 409 CheckRunning at once while a "
    "check runs (nobody waits for it), 503 Unavailable while clusterm is stopping or no "
    "replica leads",
)
async def check_now(watch: DriftDep, who: OperatorDep) -> CheckRead:
    return _read(watch, await asking.ask(watch, actor=who.name))
