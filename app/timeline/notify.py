"""Wake live followers when events are committed.

Commits happen in worker threads (sync routes, background jobs); followers wait in the event loop.
`notify()` is thread-safe and sets every subscriber's asyncio.Event on its own loop. It is only a
hint that saves a poll interval: followers also poll the database, which is how they learn of
events written by another process (`clusterm token create`, a second daemon on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class Subscription:
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the follower's loop has closed
            self._loop.call_soon_threadsafe(self._event.set)

    def clear(self) -> None:
        """Call before reading the database, so a commit during the read is not missed."""
        self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """Wait for a commit, or `timeout` seconds; True when woken by a commit."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        sub = Subscription()
        with self._lock:
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                self._subscribers.discard(sub)

    def notify(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub._wake()


# One per process: every Database in it shares it, which only costs a spurious wake-up.
notifier = Notifier()
