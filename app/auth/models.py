from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.auth.vocabulary import Role
from app.db import Base, UTCDateTime, enum_column, utcnow


class Token(Base):
    """An API token. Only its SHA-256 is kept: the token itself is shown once, at creation."""

    __tablename__ = "token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[Role] = mapped_column(enum_column(Role, 16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # None: never expires (`clusterm token create --ttl 30d` sets it).
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
