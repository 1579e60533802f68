"""Asking for a drift check, on any replica: the row is written, the leader is signalled (DRIFT),
and the asker waits for the row to be done, reading it every `ASK_POLL_S`. A check this replica
runs itself (it leads) is handed over at once, without a read (`DriftWatch.results`).

The answer comes within `deadline_s`: a leader takes a check within a second or so, so one not
taken after `PICKUP_S` is closed and refused (503): the leader is stopping or wedged. One taken
and not ended by the deadline is refused too; its result will be at GET /info/drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time

import anyio.to_thread

from app.cluster.signals import DRIFT
from app.db import DatabaseClosed, utcnow
from app.drift import checks
from app.drift.checks import Check
from app.drift.watch import DriftWatch
from app.errors import NotFound, Unavailable

ASK_POLL_S = 0.25  # how often an asker reads its check's row
PICKUP_S = 10.0  # a leader takes a check within a second or so; one that has not is not working
MARGIN_S = 30.0  # past drift_timeout_s: the Ansible run's own start and end, and the writes


def deadline_s(watch: DriftWatch) -> float:
    """How long a check may take, from asked for to done, before its asker gives up."""
    return PICKUP_S + watch.settings.drift_timeout_s + MARGIN_S


def last_check(watch: DriftWatch) -> Check:
    """The last check that ended, whichever replica ran it (blocking: call it from a thread)."""
    with watch.db.read() as session:
        found = checks.latest(session=session)
    if found is None:
        raise NotFound(
            "no drift check has run yet; one runs every drift_interval_s "
            f"({watch.settings.drift_interval_s:g} s), or now with POST /drift/check"
        )
    return found


async def ask(watch: DriftWatch, *, actor: str) -> Check:
    """Ask the leader for a check now and wait for what it finds. CheckRunning (409) at once
    if one is asked for or runs; Unavailable (503) if no replica leads, this one is stopping,
    or the leader does not take it or end it in time."""
    if watch.refusing:
        raise _stopping()
    try:
        check_id = await anyio.to_thread.run_sync(_request, watch, actor)
        ended = asyncio.Event()
        watch.waiters[check_id] = (asyncio.get_running_loop(), ended)
        try:
            return await _wait(watch, check_id, ended)
        finally:
            del watch.waiters[check_id]
    except DatabaseClosed:
        raise _stopping() from None


def _stopping() -> Unavailable:
    return Unavailable(
        "clusterm is stopping and runs no drift check; ask again once it is back",
        retry_after_s=5,
    )


def _request(watch: DriftWatch, actor: str) -> int:
    stale_before = utcnow() - dt.timedelta(seconds=deadline_s(watch))
    with watch.db.write() as session:
        if watch.leadership.leader(session) is None:
            if session.get_bind().dialect.name == "sqlite":
                raise _stopping()  # the one process, between two leads: it is stopping
            raise Unavailable(
                "no clusterm replica leads right now, and only the leader runs drift checks; "
                "one takes the lead within seconds: ask again then (GET /cluster/replicas "
                "shows the replicas)",
                retry_after_s=5,
            )
        check_id = checks.request(session=session, actor=actor, stale_before=stale_before)
        # In the transaction: the leader hears of it once the row is there.
        watch.signals.publish(DRIFT, session=session)
    return check_id


async def _wait(watch: DriftWatch, check_id: int, ended: asyncio.Event) -> Check:
    started = time.monotonic()
    deadline = deadline_s(watch)
    while True:
        # A check this replica ran is handed over here: its result, even once the database has
        # closed behind a stop that waited for the check.
        mine = watch.results.get(check_id)
        if mine is not None:
            return mine
        state = await anyio.to_thread.run_sync(_state, watch, check_id)
        if isinstance(state, Check):
            return state
        waited = time.monotonic() - started
        if state == checks.REQUESTED and waited > PICKUP_S:
            if await anyio.to_thread.run_sync(_give_up, watch, check_id):
                raise Unavailable(
                    f"the replica that leads did not take the drift check within {PICKUP_S:g} s "
                    "(it may be stopping, or losing the lead); ask again",
                    retry_after_s=5,
                )
        elif state is None or waited > deadline:
            raise Unavailable(
                f"the drift check did not end within {deadline:g} s (drift_timeout_s and a "
                "margin); its result will be at GET /info/drift if it ends",
                retry_after_s=int(watch.settings.drift_timeout_s),
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), timeout=ASK_POLL_S)


def _state(watch: DriftWatch, check_id: int) -> Check | str | None:
    with watch.db.read() as session:
        found = checks.read(session=session, check_id=check_id)
    if found is None:
        return None
    status, result = found
    return result if result is not None else status


def _give_up(watch: DriftWatch, check_id: int) -> bool:
    with watch.db.write() as session:
        return checks.give_up(
            session=session,
            check_id=check_id,
            message=f"no replica took it within {PICKUP_S:g} s; its asker gave up",
        )
