from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, enum_column, utcnow
from app.nodes.vocabulary import HostGroup, State


class Node(Base):
    __tablename__ = "node"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(253), unique=True)
    address: Mapped[str] = mapped_column(sa.String(253))
    ssh_port: Mapped[int] = mapped_column(default=22)
    ssh_user: Mapped[str] = mapped_column(sa.String(32))
    host_group: Mapped[HostGroup] = mapped_column(enum_column(HostGroup, 16))
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    vars: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    state: Mapped[State] = mapped_column(enum_column(State, 32), default=State.REGISTERED)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the node last entered the cluster (commission succeeded); kept while it is updating or
    # in maintenance, cleared when it leaves. The oldest of the masters' is the first master.
    commissioned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # Kept by the drift watch (app/drift): None until a master has been asked.
    in_cluster: Mapped[bool | None] = mapped_column(default=None)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    missing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
