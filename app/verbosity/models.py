"""The levels clusterm has set, and the reverts it owes.

One row per (component, node) that clusterm has changed. Kubernetes cannot report a component's
level, so this row is the only memory of it: `level` is what clusterm last set, `revert_to` and
`revert_at` the pending automatic revert. The revert lives here, not in a timer, so a restart of
clusterm does not forget to lower a level.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class VerbosityLevel(Base):
    __tablename__ = "verbosity_level"
    __table_args__ = (
        sa.UniqueConstraint("component", "node_name"),
        # The revert worker asks "what is due?" every time it wakes.
        sa.Index("ix_verbosity_level_revert_at", "revert_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    component: Mapped[str] = mapped_column(sa.String(64))
    # The name, not a key: a node deleted from the inventory keeps its row until its revert ran.
    node_name: Mapped[str] = mapped_column(sa.String(253))
    level: Mapped[int]
    previous_level: Mapped[int | None] = mapped_column(nullable=True)
    set_by: Mapped[str] = mapped_column(sa.String(64))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revert_to: Mapped[int | None] = mapped_column(nullable=True)
    revert_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revert_attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class VerbosityLock(Base):
    """A row per target ever changed, locked (SELECT ... FOR UPDATE) while an operation on that
    target runs, by whichever replica runs it: two replicas never change one target at once."""

    __tablename__ = "verbosity_lock"

    component: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    node_name: Mapped[str] = mapped_column(sa.String(253), primary_key=True)
