"""How often a refused request is written to the timeline: at most once per token per window.

A refusal is worth an audit event, but a script retrying a forbidden call in a loop would write
thousands of them. So the first refusal of a token in a window (`WINDOW_S`, a minute) is written,
the next ones in that window are only counted, and the count rides on the token's next written
refusal (`details.refusals_not_recorded`). Events are never edited after they are written: the
count waits in memory until then, which also means a process that stops first loses it (the daemon
logs it when a window is dropped for room, see `MAX_TOKENS`).

Only known tokens are refused (an unknown one is a 401, never recorded), so the table holds at most
one entry per token; it is bounded all the same.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from app.db import utcnow

log = logging.getLogger("clusterm.auth")


@dataclass(frozen=True)
class Unrecorded:
    """Refusals of one token that were counted but not written."""

    count: int = 0
    since: dt.datetime | None = None  # when the first of them was refused

    def plus(self, other: Unrecorded) -> Unrecorded:
        firsts = [t for t in (self.since, other.since) if t is not None]
        return Unrecorded(self.count + other.count, min(firsts) if firsts else None)


@dataclass
class _Window:
    opened: float  # monotonic
    unrecorded: Unrecorded


class RefusalLog:
    WINDOW_S = 60.0
    MAX_TOKENS = 4096

    def __init__(self, *, window_s: float = WINDOW_S, max_tokens: int = MAX_TOKENS) -> None:
        self.window_s = window_s
        self.max_tokens = max_tokens
        self._windows: OrderedDict[str, _Window] = OrderedDict()  # oldest window first
        self._lock = threading.Lock()

    def admit(self, token: str) -> Unrecorded | None:
        """None: counted, write nothing. Otherwise write an event now, carrying what it returns."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(token)
            if window is not None and now - window.opened < self.window_s:
                window.unrecorded = window.unrecorded.plus(Unrecorded(1, utcnow()))
                return None
            carried = window.unrecorded if window is not None else Unrecorded()
            self._windows.pop(token, None)
            self._make_room()
            self._windows[token] = _Window(now, Unrecorded())
            return carried

    def give_back(self, token: str, carried: Unrecorded) -> None:
        """The event could not be written: count it, and what it carried, into the next one."""
        with self._lock:
            window = self._windows.get(token)
            if window is not None:
                window.unrecorded = window.unrecorded.plus(carried).plus(Unrecorded(1, utcnow()))

    def _make_room(self) -> None:
        while len(self._windows) >= self.max_tokens:
            token, window = self._windows.popitem(last=False)
            if window.unrecorded.count:
                log.warning(
                    "%d refused requests of token %r since %s were not recorded on the timeline "
                    "(more than %d tokens refused at once)",
                    window.unrecorded.count,
                    token,
                    window.unrecorded.since,
                    self.max_tokens,
                )
