"""An open stream follows its token, and only so many streams are open at once: against the real
daemon on a loopback port."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from app import streams
from app.auth import service as auth
from app.config import Settings
from app.db import Database, utcnow
from app.timeline import service as timeline
from tests.polling import wait_until
from tests.timeline.conftest import (
    ENDS_WITHIN_S,
    Live,
    SseReader,
    serve,
    write_events,
)


def ended_with_error(reader: SseReader, timeout: float) -> dict[str, object]:
    """The stream's last message, an `event: error`, and the stream closed after it."""
    deadline = time.monotonic() + timeout
    while True:
        msg = reader.take(max(0.1, deadline - time.monotonic()))
        if msg.event == "error":
            break
        assert msg.event == "message", msg  # nothing else comes before the end
    wait_until(reader.stopped.is_set, timeout_s=2, what="the server to close the stream")
    assert reader.messages.empty()
    body: dict[str, object] = json.loads(msg.data)
    return body


def test_a_stream_ends_when_its_token_is_revoked(live: Live) -> None:
    reader = SseReader(live)
    reader.ready()
    [before] = write_events(live.db, 1)
    assert int(reader.take_events(1)[0].id or 0) == before  # the stream works

    with live.db.write() as session:
        auth.revoke_token(session=session, name="viewer")
    revoked_at = time.monotonic()
    write_events(live.db, 1)  # an event after the revocation: it may be sent or not, no more
    body = ended_with_error(reader, ENDS_WITHIN_S)
    assert time.monotonic() - revoked_at < ENDS_WITHIN_S
    assert body["error"] == "Unauthorized"
    assert "stream ended" in str(body["message"])
    assert "revoked" in str(body["message"])
    # And it cannot come back with the same token.
    with live.http() as http:
        assert http.get("/info/timeline/stream").status_code == 401


def test_a_quiet_stream_ends_too_and_other_tokens_streams_go_on(live: Live) -> None:
    """No event at all after the revocation: the check does not wait for one."""
    with live.db.write() as session:
        live.tokens["ops"] = auth.create_token(session=session, name="ops", role="viewer")
    doomed, other = SseReader(live), SseReader(live, role="ops")
    doomed.ready()
    other.ready()
    with live.db.write() as session:
        auth.revoke_token(session=session, name="viewer")
    assert ended_with_error(doomed, ENDS_WITHIN_S)["error"] == "Unauthorized"
    time.sleep(streams.RECHECK_S)  # past another check of `other`
    [new] = write_events(live.db, 1)
    assert int(other.take_events(1)[0].id or 0) == new
    assert not other.stopped.is_set()
    other.close()


def test_a_stream_ends_when_its_token_expires(live: Live) -> None:
    # Long enough for the stream to open first on a loaded machine (2 s was not, once).
    ttl_s = 10
    expires_at = utcnow() + dt.timedelta(seconds=ttl_s)
    with live.db.write() as session:
        live.tokens["brief"] = auth.create_token(
            session=session, name="brief", role="viewer", expires_at=expires_at
        )
    reader = SseReader(live, role="brief")
    reader.ready()
    body = ended_with_error(reader, ttl_s + ENDS_WITHIN_S)
    assert body["error"] == "Unauthorized"
    assert "expired" in str(body["message"])


@pytest.fixture
def capped(settings: Settings) -> Iterator[Live]:
    """The daemon with room for two followers."""
    small = settings.model_copy(update={"max_stream_followers": 2, "timeline_stream_ping_s": 0.3})
    with serve(small) as url:
        db = timeline.attach(Database(small.effective_database_url))
        tokens = {"viewer": ""}
        with db.write() as session:
            tokens["viewer"] = auth.create_token(session=session, name="viewer", role="viewer")
        yield Live(url, tokens, db, small)
        db.dispose()


def test_followers_beyond_the_cap_get_503_with_retry_after(capped: Live) -> None:
    first, second = SseReader(capped), SseReader(capped)
    first.ready()
    second.ready()
    with capped.http() as http:
        r = http.get("/info/timeline/stream")
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) >= 1
        body = r.json()
        assert body["error"] == "TooManyFollowers"
        assert "max_stream_followers" in body["message"]
        assert body["max_stream_followers"] == 2
        # Pages are not streams: still served.
        assert http.get("/info/timeline").status_code == 200

    first.close()  # a follower that leaves frees its place
    with capped.http() as http:

        def admitted() -> bool:
            with http.stream("GET", "/info/timeline/stream") as response:
                return response.status_code == 200

        wait_until(admitted, timeout_s=10, what="a place to free up")
    second.close()


def test_a_refused_or_failed_stream_holds_no_place(capped: Live) -> None:
    """Streams refused before they start (bad cursor, no token) and HEAD requests do not use up
    the cap, however many there are."""
    with httpx.Client(base_url=capped.url, timeout=10) as anonymous, capped.http() as http:
        for _ in range(5):
            assert anonymous.get("/info/timeline/stream").status_code == 401
            bad = http.get("/info/timeline/stream", headers={"Last-Event-ID": "x"})
            assert bad.status_code == 422
            assert http.head("/info/timeline/stream").status_code in (200, 405)
    readers = [SseReader(capped), SseReader(capped)]
    for reader in readers:
        reader.ready()
    for reader in readers:
        reader.close()
