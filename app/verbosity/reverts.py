"""The revert worker: lowers levels whose ttl has run out, including those due while clusterm was
down (the reverts are rows in the database, so a restart finds them and runs them first).

It runs on the leader only (it is part of the background group). It sleeps until the earliest
pending revert, or until a change on any replica schedules one (signal REVERTS), and never longer
than `POLL_S`, so a revert whose signal was lost is also picked up. Every revert is checked
against the lease before it is sent and fenced when recorded (app.verbosity.service._apply): a
replica that lost the lead sends none, and records none it sent as the lead went; the new leader
runs it (again: a revert twice changes nothing). A failed revert is retried with a growing delay
(`verbosity_revert_retry_s`, doubling, at most an hour) up to `verbosity_revert_max_attempts`
times; every attempt is on the timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.cluster.leadership import LeadLost
from app.cluster.signals import REVERTS
from app.db import utcnow
from app.verbosity import service
from app.verbosity.service import Verbosity

log = logging.getLogger("clusterm.verbosity")

POLL_S = 30.0
ERROR_PAUSE_S = 5.0


class RevertWorker:
    """The revert worker as a background component (see app.runtime): a task from `start` to
    `stop`, which may follow each other any number of times."""

    name = "verbosity revert worker"

    def __init__(self, ctx: Verbosity) -> None:
        self.ctx = ctx
        self._stopping = True
        self._task: asyncio.Task[None] | None = None
        ctx.signals.subscribe(REVERTS, self._heard)

    def _heard(self, _payload: str) -> None:
        # In the signal listener's thread: only the event loop may touch the event.
        loop = self.ctx.loop
        if not loop.is_closed():
            loop.call_soon_threadsafe(self.ctx.revert_scheduled.set)

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def refuse_work(self) -> None:
        self._stopping = True
        self.ctx.revert_scheduled.set()  # wakes the worker from its wait

    async def stop(self) -> None:
        """Stop between two steps, never in the middle of a database call (whose connection
        would outlive the pool), and wait for it."""
        self.refuse_work()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _run(self) -> None:
        ctx = self.ctx
        while not self._stopping:
            # Cleared before looking, so a revert scheduled while we look still wakes us.
            ctx.revert_scheduled.clear()
            try:
                while await service.revert_due(ctx=ctx) and not self._stopping:
                    pass  # a full batch: there may be more due
                next_at = await service.next_revert_at(ctx=ctx)
            except LeadLost:
                # The runtime stops this worker as the lead goes; the reverts wait in the
                # database for the next leader.
                log.warning(
                    "the verbosity revert worker stopped reverting: this replica lost the lead"
                )
                next_at, wait = None, ERROR_PAUSE_S
            except Exception:
                # The database may be briefly unavailable; the reverts wait in it, so try again.
                log.exception("the verbosity revert worker failed; retrying in %ss", ERROR_PAUSE_S)
                next_at, wait = None, ERROR_PAUSE_S
            else:
                wait = POLL_S
            if next_at is not None:
                wait = max(0.0, min(wait, (next_at - utcnow()).total_seconds()))
            if wait > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.revert_scheduled.wait(), timeout=wait)
