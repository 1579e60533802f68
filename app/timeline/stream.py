"""Live follow over Server-Sent Events.

Each event goes out with `id: <event id>`; a client that reconnects with `Last-Event-ID` (or
`after_id`) gets everything after it, then live events, with no gap and no duplicate because the
cursor is the id itself and ids are handed out in commit order (see `service`).

A cursor that retention has passed gets an explicit `event: reset` telling what may be missing,
never a silent gap; then the stream goes on from the events still kept after it. A cursor this
timeline never issued (a restored or replaced database) gets a reset that moves it to the head.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from sse_starlette import ServerSentEvent

from app.db import Database
from app.timeline import service
from app.timeline.filters import TimelineFilter
from app.timeline.notify import notifier
from app.timeline.schemas import EventRead

REPLAY_BATCH = 500


@dataclass
class _Read:
    events: list[EventRead]
    purged_through: int


def _read(db: Database, cursor: int, filters: TimelineFilter) -> _Read:
    with db.read() as session:
        rows = service.events_after(
            session=session, after_id=cursor, filters=filters, limit=REPLAY_BATCH
        )
        purged = service.purged_through(session=session)
        return _Read([EventRead.of(r) for r in rows], purged)


def _position(db: Database) -> tuple[int, int]:
    with db.read() as session:
        _, latest = service.bounds(session=session)
        return service.purged_through(session=session), latest or 0


def _reset(reason: str, message: str, **details: int | None) -> ServerSentEvent:
    body = {"error": reason, "message": message, **details}
    new_cursor = details.get("resume_after_id") if reason == "CursorUnknown" else None
    # An `id:` on the reset moves the client's Last-Event-ID, so a reconnect does not repeat it.
    return ServerSentEvent(
        event="reset",
        data=json.dumps(body),
        id=str(new_cursor) if new_cursor is not None else None,
    )


async def follow(
    *, db: Database, filters: TimelineFilter, after_id: int | None, poll_s: float
) -> AsyncIterator[ServerSentEvent]:
    with notifier.subscribe() as wakeup:
        purged, head = await anyio.to_thread.run_sync(_position, db)
        if after_id is None:
            cursor = head
        elif after_id > max(head, purged):
            cursor = head
            yield _reset(
                "CursorUnknown",
                f"event id {after_id} was never issued by this timeline (the newest is {head}); "
                "following from the newest event",
                requested_after_id=after_id,
                resume_after_id=head,
            )
        else:
            cursor = after_id
        yield ServerSentEvent(comment=f"following after id {cursor}")
        told_purged = -1
        while True:
            wakeup.clear()
            read = await anyio.to_thread.run_sync(_read, db, cursor, filters)
            if cursor < read.purged_through and read.purged_through > told_purged:
                told_purged = read.purged_through
                yield _reset(
                    "CursorExpired",
                    f"retention has deleted events up to id {read.purged_through}; some after "
                    f"id {cursor} may be missing. Continuing with the events still kept",
                    requested_after_id=cursor,
                    purged_through_id=read.purged_through,
                )
            for event in read.events:
                cursor = event.id
                yield ServerSentEvent(data=event.model_dump_json(), id=str(event.id))
            if len(read.events) == REPLAY_BATCH:
                continue  # more backlog: no wait
            await wakeup.wait(poll_s)
