"""The cap on live streams open at once, timeline and job-log streams together (see app.streams):
each costs a connection, a little memory and a database poll every second or so."""

from __future__ import annotations

import threading

from app.errors import Unavailable

RETRY_AFTER_S = 5


class TooManyFollowers(Unavailable):
    pass


class Followers:
    """Open streams, counted across every kind; `take` refuses one beyond the cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open = 0
        self._lock = threading.Lock()

    def take(self) -> Slot:
        with self._lock:
            if self._open >= self.cap:
                raise TooManyFollowers(
                    f"{self._open} live streams are open, the most this daemon serves at once "
                    "(setting max_stream_followers); try again after Retry-After seconds, or "
                    "poll instead (GET /info/timeline?after_id=N, GET /info/job/active?since=N)",
                    retry_after_s=RETRY_AFTER_S,
                    max_stream_followers=self.cap,
                )
            self._open += 1
        return Slot(self)

    def _release(self) -> None:
        with self._lock:
            self._open -= 1


class Slot:
    def __init__(self, followers: Followers) -> None:
        self._followers: Followers | None = followers

    def release(self) -> None:
        followers, self._followers = self._followers, None
        if followers is not None:
            followers._release()
