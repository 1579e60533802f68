"""What every live stream (Server-Sent Events) shares: a cap on how many are open, and a token
that keeps being checked while one is.

A stream outlives the request that opened it by hours, so checking its token once, at the start,
is not enough: the token may be revoked or expire meanwhile. Every `RECHECK_S` seconds, whether
events flow or not, the stream checks its token again through the token cache (a database read at
most every `TokenCache.TTL_S`); for a token no longer valid it sends one `event: error` whose data
is the 401's body, then ends. A check that cannot be made (the database is unreachable) ends the
stream the same way: a stream never goes on unchecked.

Each open stream costs a connection, a little memory and a database poll every second or so, so
at most `max_stream_followers` are open at once, timeline and job-log streams together; one more
is a 503 with `Retry-After`. Paging the same data (`after_id`, `since`) is never capped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from app.auth.deps import current_principal
from app.errors import ClustermError, ValidationFailed
from app.followers import Followers, Slot

log = logging.getLogger("clusterm.streams")

RECHECK_S = 5.0
READ_AHEAD = 64  # events read ahead of the client: enough to keep a replay from waiting


def last_event_id(value: str | None, *, max_id: int) -> int | None:
    """The cursor a reconnecting client sends (`Last-Event-ID`), or None for none; a 422 naming
    the header for anything but a whole number from 0 to `max_id`."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    # The length first: int() refuses more than 4,300 digits with an error of its own.
    if len(text) <= len(str(max_id)) and text.isascii() and text.isdigit() and int(text) <= max_id:
        return int(text)
    shown = text if len(text) <= 40 else f"{text[:20]}… ({len(text)} characters)"
    reason = f"{shown!r} is not an event id (a whole number from 0 to {max_id})"
    raise ValidationFailed(
        f"Last-Event-ID: {reason}", fields=[{"field": "Last-Event-ID", "reason": reason}]
    )


class _StreamResponse(EventSourceResponse):
    """Gives its follower slot back however the response ends: the stream's end, the client's
    disconnect, a failed send, a HEAD request that never starts the stream."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], *, slot: Slot, ping: float):
        super().__init__(content, ping=ping)
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()


def open_stream(
    request: Request,
    events: AsyncIterator[ServerSentEvent],
    *,
    followers: Followers,
    ping: float,
) -> EventSourceResponse:
    """The response for a live stream of `events`: counted against the cap (TooManyFollowers
    beyond it), and ended when the request's token stops being valid."""
    slot = followers.take()
    return _StreamResponse(_checked(request, events), slot=slot, ping=ping)


async def _still_allowed(request: Request) -> ServerSentEvent | None:
    """None while the request's token is valid; otherwise the stream's last event."""
    try:
        await current_principal(request)
    except ClustermError as exc:
        body: dict[str, Any] = exc.body()
    except Exception as exc:
        log.warning("could not re-check a stream's token, ending the stream: %s", exc)
        body = {
            "error": "Unavailable",
            "message": "the daemon could not re-check this stream's token (is the database "
            "reachable?), so the stream ends; reconnect to resume where it stopped",
        }
    else:
        return None
    body["message"] = f"stream ended: {body['message']}"
    return ServerSentEvent(event="error", data=json.dumps(body))


async def _checked(
    request: Request, events: AsyncIterator[ServerSentEvent]
) -> AsyncIterator[ServerSentEvent]:
    """`events`, with the token checked every RECHECK_S seconds even while none come.

    The events are read by a task of their own into a short queue, so that the check can run
    while the next event is awaited (cancelling the read instead would end the stream: a
    generator cannot be resumed once cancelled). An event read but not sent when the stream ends
    is simply dropped: the client's cursor is the last id it received.
    """
    queue: asyncio.Queue[ServerSentEvent | _End] = asyncio.Queue(maxsize=READ_AHEAD)
    reader = asyncio.ensure_future(_pump(events, queue))
    next_check = time.monotonic() + RECHECK_S
    try:
        while True:
            if time.monotonic() >= next_check:
                last = await _still_allowed(request)
                if last is not None:
                    yield last
                    return
                next_check = time.monotonic() + RECHECK_S
            try:
                item = queue.get_nowait()  # the common case while a backlog is replayed
            except asyncio.QueueEmpty:
                got = await _get(queue, timeout=next_check - time.monotonic())
                if got is None:
                    continue  # time for a check
                item = got
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        # Shielded: the response's task group is being cancelled, and the inner stream's own
        # cleanup (its database read, its subscription) must still run to the end.
        with anyio.CancelScope(shield=True):
            reader.cancel()
            await asyncio.wait({reader})
            if not reader.cancelled() and (error := reader.exception()) is not None:
                log.warning("a stream failed while it was being closed: %r", error)


class _End:
    """The inner stream is over: it ended, or raised `error`."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def _pump(
    events: AsyncIterator[ServerSentEvent], queue: asyncio.Queue[ServerSentEvent | _End]
) -> None:
    end = _End()
    try:
        async for event in events:
            await queue.put(event)
    except Exception as exc:
        end = _End(exc)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    await queue.put(end)


async def _get(
    queue: asyncio.Queue[ServerSentEvent | _End], *, timeout: float
) -> ServerSentEvent | _End | None:
    """The next item, or None after `timeout` seconds."""
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({getter}, timeout=max(0.0, timeout))
    except BaseException:
        getter.cancel()  # the stream is ending: whatever it would get is not needed
        raise
    if not getter.done():
        getter.cancel()
        await asyncio.wait({getter})
    # Done in the meantime, or cancelled too late to stop it: then it holds an item.
    return None if getter.cancelled() else getter.result()
