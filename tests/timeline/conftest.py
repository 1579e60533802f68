"""Timeline fixtures: events written straight through the service, and the real daemon on a
loopback port for the stream (SSE needs a real server: TestClient buffers a response whole)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
import uvicorn

from app import streams
from app.auth import service as auth
from app.config import Settings
from app.db import Database, upgrade
from app.main import create_app
from app.timeline import service as timeline
from tests.polling import wait_until

# How soon an open stream ends after its token is revoked: a check every RECHECK_S, each through a
# token cache entry at most TokenCache.TTL_S old; one more second for a loaded machine.
ENDS_WITHIN_S = streams.RECHECK_S + auth.TokenCache.TTL_S + 1


def write_events(db: Database, count: int, **fields: Any) -> list[int]:
    """`count` events in one transaction; their ids, oldest first."""
    base: dict[str, Any] = {"action": "test", "reason": "Tested", "result": "succeeded"}
    with db.write() as session:
        events = [
            timeline.record_event(session=session, **{**base, **fields}) for _ in range(count)
        ]
        timeline.flush_events(session)
    ids = [event.id for event in events]
    assert None not in ids, "flush_events wrote every queued event"
    return cast(list[int], ids)


@pytest.fixture
def store(db_url: str) -> Iterator[Database]:
    """A migrated database without the daemon: for the service-level tests."""
    upgrade(db_url)
    database = timeline.attach(Database(db_url))
    yield database
    database.dispose()


@dataclass
class Live:
    url: str
    tokens: dict[str, str]
    db: Database
    settings: Settings

    def http(self, role: str = "viewer") -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            timeout=10.0,
        )


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The app of `settings` served by uvicorn on a free loopback port; yields its base URL."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_config=None, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout_s=30, what="the daemon to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive(), "the daemon did not stop within 30 s"


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    fast = settings.model_copy(
        update={"timeline_stream_ping_s": 0.3, "timeline_stream_poll_s": 0.2}
    )
    with serve(fast) as url:
        db = timeline.attach(Database(fast.effective_database_url))
        tokens = {"admin": fast.admin_token_file.read_text().strip()}
        with db.write() as session:
            tokens["viewer"] = auth.create_token(session=session, name="viewer", role="viewer")
        yield Live(url, tokens, db, fast)
        db.dispose()


@dataclass
class Message:
    id: str | None = None
    event: str = "message"
    data: str = ""
    comments: list[str] = field(default_factory=list)


class SseReader:
    """Reads a stream in a thread; the test takes messages from a queue with a timeout, so a
    missing event fails the test instead of hanging it. Stops after `stop_after` events."""

    def __init__(
        self,
        live: Live,
        *,
        params: dict[str, Any] | None = None,
        last_event_id: str | None = None,
        stop_after: int | None = None,
        path: str = "/info/timeline/stream",
        role: str = "viewer",
    ) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.comments: list[str] = []
        self.stop_after = stop_after
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        self._thread = threading.Thread(
            target=self._run, args=(live, path, role, params or {}, headers), daemon=True
        )
        self._thread.start()

    def _run(
        self, live: Live, path: str, role: str, params: dict[str, Any], headers: dict[str, str]
    ) -> None:
        delivered = 0
        try:
            with (
                live.http(role) as http,
                http.stream("GET", path, params=params, headers=headers) as response,
            ):
                assert response.status_code == 200, response.read()
                current = Message()
                for line in response.iter_lines():
                    if self.stopped.is_set():
                        return
                    if line == "":
                        if current.comments and current.id is None and not current.data:
                            self.comments.extend(current.comments)
                        else:
                            self.messages.put(current)
                            delivered += current.event == "message"
                            if self.stop_after is not None and delivered >= self.stop_after:
                                return  # the disconnect: leaving the block closes the socket
                        current = Message()
                    elif line.startswith(":"):
                        current.comments.append(line[1:].strip())
                    else:
                        key, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if key == "data":
                            current.data = f"{current.data}\n{value}" if current.data else value
                        elif key in ("id", "event"):
                            setattr(current, key, value)
        except BaseException as exc:  # handed to the test thread
            self.error = exc
        finally:
            self.stopped.set()

    def take(self, timeout: float = 10.0) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no SSE message within {timeout} s (error: {self.error})"
            ) from None

    def take_events(self, count: int, timeout: float = 10.0) -> list[Message]:
        out: list[Message] = []
        while len(out) < count:
            msg = self.take(timeout)
            if msg.event == "message":
                out.append(msg)
        return out

    def close(self) -> None:
        self.stopped.set()
        self._thread.join(5)

    def ready(self) -> None:
        """Wait for the stream's opening comment: events committed from now on will arrive."""
        wait_until(
            lambda: any(c.startswith("following") for c in self.comments) or self.error,
            timeout_s=10,
            what="the stream to open",
        )
        assert self.error is None, self.error
