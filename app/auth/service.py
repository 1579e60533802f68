"""Tokens: create, list, revoke, authenticate, and the admin token made on first start.

A token is 32 random bytes; only its SHA-256 is stored. A slow password hash would add nothing for a
secret of that entropy and would cost every request. The lookup is by hash and the final comparison
is constant-time, so neither timing nor the database reveals a token.

A token may expire (`clusterm token create --ttl 30d`): from `expires_at` on it is refused with a
401 that says when it expired. The expiry travels with the principal, so the token cache never
keeps an expired token alive.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import Token
from app.auth.vocabulary import Role
from app.db import Database, utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from app.instruments import Refusal, count_refusal
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity

log = logging.getLogger("clusterm.auth")

TOKEN_PREFIX = "cltm_"  # noqa: S105  (a prefix that makes leaked tokens easy to grep for)
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
BOOTSTRAP_NAME = "admin"
LAST_USED_RESOLUTION = dt.timedelta(minutes=5)
# Ten years: long enough for any real use, short enough that the expiry is a real date.
MAX_TTL = dt.timedelta(days=3650)
_TTL_RE = re.compile(r"(?:\d{1,7}[smhd])+", re.ASCII)
_TTL_PART = re.compile(r"(\d+)([smhd])")
_TTL_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (the actor on the timeline), its role and its expiry."""

    name: str
    role: Role
    expires_at: dt.datetime | None = None

    def require(self, needed: Role) -> None:
        if self.role.rank < needed.rank:
            raise Forbidden(
                f"this needs the {needed} role; token {self.name!r} has {self.role}. "
                f"Ask an admin for a token with `clusterm token create --role {needed}`",
                required_role=needed,
            )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise Invalid(
            f"token name {name!r} is not valid: use 1-64 lowercase letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit",
            field="name",
        )


def parse_ttl(text: str) -> dt.timedelta:
    """A token's lifetime: `90s`, `15m`, `12h`, `30d` (parts may be combined: `1d12h`)."""
    value = text.strip()
    if not _TTL_RE.fullmatch(value):
        raise Invalid(
            f"{text[:32]!r} is not a duration; write it as 90s, 15m, 12h or 30d", field="ttl"
        )
    seconds = sum(int(n) * _TTL_UNIT_S[unit] for n, unit in _TTL_PART.findall(value))
    # Compared as an integer: a long enough sum would overflow timedelta itself.
    if not 1 <= seconds <= MAX_TTL.total_seconds():
        raise Invalid(
            f"{value[:32]} is not between 1s and {MAX_TTL.days}d; pick a lifetime in that range",
            field="ttl",
        )
    return dt.timedelta(seconds=seconds)


def expired(expires_at: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    """Whether a token with this expiry (None: never) has expired by `now`."""
    return expires_at is not None and expires_at <= (now or utcnow())


def create_token(
    *, session: Session, name: str, role: Role | str, expires_at: dt.datetime | None = None
) -> str:
    """Store a new token and return it: the only time it is ever seen. None: never expires."""
    _check_name(name)
    try:
        role = Role(role)
    except ValueError:
        raise Invalid(
            f"role {role!r} is not one of viewer, operator, admin", field="role"
        ) from None
    if session.scalar(sa.select(Token.id).where(Token.name == name)) is not None:
        raise Conflict(
            f"a token named {name!r} already exists; revoke it first or pick another name",
            token=name,
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(Token(name=name, role=role, token_hash=_digest(token), expires_at=expires_at))
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"a token named {name!r} already exists", token=name) from None
    return token


def list_tokens(*, session: Session) -> list[Token]:
    return list(session.scalars(sa.select(Token).order_by(Token.name)))


def revoke_token(*, session: Session, name: str) -> Token:
    row = session.scalar(sa.select(Token).where(Token.name == name))
    if row is None:
        raise NotFound(f"no token named {name!r}; see `clusterm token list`", token=name)
    session.delete(row)
    return row


class TokenCache:
    """Tokens checked in the last TTL_S seconds, so that a request costs no database read.

    Tokens are revoked by `clusterm token revoke`, another process: a revoked token stops working
    within TTL_S. Unknown tokens are never cached, so a guessed token always meets the database.
    An entry holds the token's expiry and is dropped from that moment, however fresh it is: the
    next request meets the database and gets the 401 that names the expiry.
    """

    TTL_S = 2.0
    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        principal = entry[0]
        if expired(principal.expires_at):
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = (principal, time.monotonic() + self.TTL_S)


def token_digest(authorization: str | None) -> str:
    """The stored form of the header's token; Unauthorized when there is no well-formed one."""
    if not authorization:
        count_refusal(Refusal.MISSING)
        raise Unauthorized(
            "no token: send `Authorization: Bearer <token>` "
            "(clusterctl reads it from --token or CLUSTERM_TOKEN)"
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        count_refusal(Refusal.MALFORMED)
        raise Unauthorized("the Authorization header must be `Bearer <token>`")
    return _digest(token)


def authenticate(
    *, db: Database, authorization: str | None, cache: TokenCache | None = None
) -> Principal:
    """Resolve an `Authorization: Bearer ...` header to a principal, or raise Unauthorized."""
    digest = token_digest(authorization)
    if cache is not None and (known := cache.get(digest)) is not None:
        return known
    with db.read() as session:
        row = session.scalar(sa.select(Token).where(Token.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        count_refusal(Refusal.UNKNOWN)
        raise Unauthorized("the token is not valid: it is unknown or was revoked")
    now = utcnow()
    if expired(row.expires_at, now):
        assert row.expires_at is not None
        count_refusal(Refusal.EXPIRED)
        raise Unauthorized(
            f"the token {row.name!r} expired at {row.expires_at.isoformat(timespec='seconds')}; "
            "ask an admin for a new one"
        )
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        # Coarse on purpose: a write per request would queue every reader behind SQLite's lock.
        with db.write() as session:
            session.execute(sa.update(Token).where(Token.id == row.id).values(last_used_at=now))
    principal = Principal(name=row.name, role=row.role, expires_at=row.expires_at)
    if cache is not None:
        cache.put(digest, principal)
    return principal


def ensure_bootstrap_token(*, db: Database, token_file: Path) -> bool:
    """On a first start with no token at all, create an admin token in a 0600 file.

    Returns True when it made one. The token is written only to the file, never to a log.
    """
    with db.write() as session:
        if session.scalar(sa.select(sa.func.count()).select_from(Token)):
            return False
        token = create_token(session=session, name=BOOTSTRAP_NAME, role=Role.ADMIN)
        timeline.record_event(
            session=session,
            action="token",
            reason="TokenCreated",
            result=Result.SUCCEEDED,
            severity=Severity.AUDIT,
            actor="clusterm",
            note=f"first start: admin token {BOOTSTRAP_NAME!r} written to {token_file}",
            details={"token": BOOTSTRAP_NAME, "role": Role.ADMIN, "expires_at": None},
        )
        token_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = token_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        os.replace(tmp, token_file)
    log.info("created the first admin token in %s (mode 0600)", token_file)
    return True
