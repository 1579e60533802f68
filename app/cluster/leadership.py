"""Which replica leads, as the rest of clusterm sees it: `Leadership`, and `LeadLost` when a write
only the leader may make is refused.

The leader runs the background work (jobs, verbosity reverts, the drift watch, retention); every
replica answers every route. On PostgreSQL the lead is a lease (app.cluster.lease); on SQLite the
one process leads (`SoleLeader`). Each write only the leader may make calls `fence` first in its
own transaction, which refuses it unless this replica leads at that moment (see docs/replicas.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from app.errors import Unavailable


class LeadLost(Unavailable):
    """This replica does not, or no longer, hold the lead: the leader's work is not its to do."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "this clusterm replica does not lead (any more); the replica that leads does "
            "this work: see GET /cluster/replicas, and send the request again",
            retry_after_s=2,
        )


@dataclass(frozen=True)
class LeaderInfo:
    replica_id: str
    epoch: int
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class Change:
    """A lead taken: from whom, and why the lead passed (for the timeline's LeaderChanged)."""

    epoch: int
    previous: str | None
    why: str


class Leadership(Protocol):
    replica_id: str

    @property
    def is_leader(self) -> bool: ...

    @property
    def epoch(self) -> int: ...

    def fence(self, session: Session) -> None:
        """In a write transaction: LeadLost unless this replica leads now (see the module)."""

    def leader(self, session: Session) -> LeaderInfo | None:
        """Who leads now, if anyone."""


# --- SQLite: one process -------------------------------------------------------------------------


class SoleLeader:
    """The one process on an SQLite file leads while its background work runs (a second daemon
    on the file is refused at start-up: app.files.lock_sqlite)."""

    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def epoch(self) -> int:
        return 1 if self._leading else 0

    def take(self) -> None:
        self._leading = True

    def let_go(self) -> None:
        self._leading = False

    def fence(self, session: Session) -> None:
        if not self._leading:
            raise LeadLost("clusterm is stopping; send the request again once it is back")

    def leader(self, session: Session) -> LeaderInfo | None:
        return LeaderInfo(self.replica_id, 1, None) if self._leading else None
