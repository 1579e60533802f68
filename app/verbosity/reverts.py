"""The revert worker: lowers levels whose ttl has run out, including those due while clusterm was
down (the reverts are rows in the database, so a restart finds them and runs them first).

It sleeps until the earliest pending revert, or until a change schedules an earlier one, and
never longer than `POLL_S`, so a revert written by another process is also picked up. A failed
revert is retried with a growing delay (`verbosity_revert_retry_s`, doubling, at most an hour)
up to `verbosity_revert_max_attempts` times; every attempt is on the timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.db import utcnow
from app.verbosity import service
from app.verbosity.service import Verbosity

log = logging.getLogger("clusterm.verbosity")

POLL_S = 30.0
ERROR_PAUSE_S = 5.0


async def run(ctx: Verbosity) -> None:
    while not ctx.stopping:
        # Cleared before looking, so a revert scheduled while we look still wakes us.
        ctx.revert_scheduled.clear()
        try:
            while await service.revert_due(ctx=ctx) and not ctx.stopping:
                pass  # a full batch: there may be more due
            next_at = await service.next_revert_at(ctx=ctx)
        except Exception:
            # The database may be briefly unavailable; the reverts wait in it, so try again.
            log.exception("the verbosity revert worker failed; retrying in %ss", ERROR_PAUSE_S)
            next_at, wait = None, ERROR_PAUSE_S
        else:
            wait = POLL_S
        if next_at is not None:
            wait = max(0.0, min(wait, (next_at - utcnow()).total_seconds()))
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.revert_scheduled.wait(), timeout=wait)
