"""clusterm's own verbosity: Kubernetes' V levels mapped onto Python loggers.

V0-V5 follow the Kubernetes logging conventions: V0 only what must always be seen, V1 a quiet
default, V2 the recommended default, V3 extended information about changes, V4 debug, V5 trace.
Higher values are accepted, as klog accepts them, and log like V5 (see
docs/contracts.md#flags-endpoint). The table below is the one the README documents; change both
together.

The level is process state, as it is in a Kubernetes component: a restart returns to the
start-up configuration (`log_level`). So the pending revert of clusterm's own level is a timer,
not a database row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.db import utcnow

WRN, INF, DBG = logging.WARNING, logging.INFO, logging.DEBUG

# Loggers clusterm touches, and their level at V0..V5.
LEVEL_TABLE: dict[str, tuple[int, int, int, int, int, int]] = {
    "clusterm": (WRN, INF, INF, INF, DBG, DBG),  # the daemon's own messages
    "clusterm.verbosity": (WRN, INF, INF, DBG, DBG, DBG),  # changes: what was forwarded where
    "clusterm.jobs": (WRN, INF, INF, DBG, DBG, DBG),
    "clusterm.nodes": (WRN, INF, INF, DBG, DBG, DBG),
    "clusterm.timeline": (WRN, INF, INF, DBG, DBG, DBG),
    "clusterm.auth": (WRN, INF, INF, DBG, DBG, DBG),
    "uvicorn.error": (WRN, INF, INF, INF, INF, DBG),
    "uvicorn.access": (WRN, WRN, INF, INF, INF, INF),  # one line per request from V2
    "httpx": (WRN, WRN, WRN, INF, INF, INF),  # one line per outgoing request from V3
    "httpcore": (WRN, WRN, WRN, WRN, WRN, DBG),  # connection-level trace at V5
    "alembic": (WRN, WRN, INF, INF, INF, INF),
    "ansible_runner": (WRN, WRN, WRN, WRN, DBG, DBG),
    # Every SQL statement at V5, never its bound values: the engine hides them (app/db.py), as
    # they hold node vars and token digests.
    "sqlalchemy.engine": (WRN, WRN, WRN, WRN, WRN, INF),
}

# What `log_level` (the start-up setting) corresponds to, for reporting the baseline.
BASELINE_OF_LOG_LEVEL = {"debug": 4, "info": 2, "warning": 0, "error": 0}


def logger_levels(level: int) -> dict[str, int]:
    column = min(level, 5)
    return {name: levels[column] for name, levels in LEVEL_TABLE.items()}


@dataclass
class OwnState:
    level: int
    set_by: str | None
    set_at: dt.datetime | None
    revert_to: int | None  # None with reverts_at set: back to the start-up configuration
    reverts_at: dt.datetime | None


class OwnVerbosity:
    """The running daemon's level. Methods run on the event loop; none of them blocks."""

    def __init__(self, *, log_level: str, on_revert: Callable[[int, int], None]) -> None:
        self.baseline = BASELINE_OF_LOG_LEVEL.get(log_level, 2)
        self._snapshot: dict[str, int] | None = None
        self._on_revert = on_revert
        self._timer: asyncio.TimerHandle | None = None
        self.state = OwnState(self.baseline, None, None, None, None)
        self._changed = False  # still the start-up configuration

    def set(self, *, level: int, ttl_s: int, actor: str) -> tuple[int, OwnState]:
        """Apply `level` now; with a ttl, go back to what was in effect before when it ends.

        A new change replaces a pending revert but keeps its destination: raising 4 then 6 ends
        at the level before the 4, not at 4.
        """
        previous = self.state.level
        pending = self.state.reverts_at is not None
        back_to = self.state.revert_to if pending else (previous if self._changed else None)
        self._apply(level)
        self._cancel_timer()
        now = utcnow()
        reverts_at = now + dt.timedelta(seconds=ttl_s) if ttl_s else None
        self.state = OwnState(level, actor, now, back_to if ttl_s else None, reverts_at)
        if ttl_s:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(ttl_s, self._revert_now, back_to)
        return previous, self.state

    def close(self) -> None:
        self._cancel_timer()
        self._restore()

    def _revert_now(self, back_to: int | None) -> None:
        self._timer = None
        previous = self.state.level
        if back_to is None:
            self._restore()
            self.state = OwnState(self.baseline, "clusterm", utcnow(), None, None)
        else:
            self._apply(back_to)
            self.state = OwnState(back_to, "clusterm", utcnow(), None, None)
        self._on_revert(previous, self.state.level)

    def _apply(self, level: int) -> None:
        if self._snapshot is None:
            self._snapshot = {name: logging.getLogger(name).level for name in LEVEL_TABLE}
        for name, value in logger_levels(level).items():
            logging.getLogger(name).setLevel(value)
        self._changed = True

    def _restore(self) -> None:
        if self._snapshot is not None:
            for name, value in self._snapshot.items():
                logging.getLogger(name).setLevel(value)
        self._changed = False

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
