"""Following a job's log live (Server-Sent Events): any job, running or long finished.

A stream sends the lines after its cursor (`event: line`, `id:` = the line number; `event: gap`
where the log's middle was dropped, `id:` = the last line dropped), then new lines as the job
prints them, then one `event: status` (the job's row) once the job has ended and its log is
complete; then it ends. Line numbers are the same on every replica, so a client that lost its
connection, even after the job ended, reconnects anywhere with `Last-Event-ID` and gets the rest,
then the status: nothing twice, nothing skipped.

The log comes from the replica's cache (app.jobs.logstore.LogCache): the followers of one job
share one look at the database per poll, and a finished job's copy never reads it again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.errors import Gone
from app.jobs.logstore import StoredJob
from app.jobs.views import job_view, render_line
from app.jobs.vocabulary import ACTIVE_STATUSES
from app.jobs.worker import JobManager

STREAM_BATCH = 1000  # lines per read while streaming a backlog
# How often a follower looks at the database for new lines; the replica's copy of the log is
# shared, so each look costs two small reads, plus the new lines once for all followers.
STREAM_POLL_S = 0.25


async def log_events(
    jobs: JobManager, run: StoredJob, cursor: int, color: bool
) -> AsyncIterator[ServerSentEvent]:
    """The backlog after `cursor`, then lines as they come, then one `status` event."""
    job_id = run.row.id
    while True:
        # The row before the log: a job turns finished only once its log is complete.
        finished = run.row.status not in ACTIVE_STATUSES
        piece = run.log.read(since=cursor, limit=STREAM_BATCH)
        for number, line in piece.numbered():
            if number is None:
                assert piece.gap is not None
                last_dropped = piece.gap.after_line + piece.gap.lines
                yield ServerSentEvent(data=line, event="gap", id=str(last_dropped))
            else:
                yield ServerSentEvent(data=render_line(line, color), event="line", id=str(number))
        cursor = piece.next_line - 1
        if piece.complete and finished:
            yield ServerSentEvent(data=json.dumps(job_view(run.row)), event="status")
            return
        if len(piece.lines) >= STREAM_BATCH:
            continue  # more of the backlog in this copy: no need to look at the database yet
        await asyncio.sleep(STREAM_POLL_S)
        fresh = jobs.logs.peek(job_id, max_age_s=STREAM_POLL_S)
        if fresh is None:
            try:
                fresh = await run_in_threadpool(jobs.stored_job, job_id)
            except Gone as exc:
                # Its copy left this replica's cache and the database let the log go meanwhile
                # (job_dirs_kept newer jobs ran while this client read): say so, and end.
                yield ServerSentEvent(data=json.dumps(exc.body()), event="error")
                return
        run = fresh
