"""The store: engine, sessions, shared column types, and migrations.

SQLite is the embedded default and gets the settings a server-side database would not need: WAL so
readers never wait for the writer, `synchronous=NORMAL` (durable at each checkpoint, safe with WAL),
`busy_timeout` so a writer waits for the lock instead of failing, and `foreign_keys=ON`.

Write transactions on SQLite start with `BEGIN IMMEDIATE`. A plain `BEGIN` is deferred: two
transactions that both read and then write each hold a shared lock and wait for the other to
drop it, and one fails with "database is locked" no matter the timeout. Taking the write lock up
front turns that deadlock into a queue. Reads keep the deferred `BEGIN`, so they never queue
behind writers. The same code runs on PostgreSQL, where both kinds are ordinary transactions.

SQLite's wait for the write lock is not a queue, though: a waiting connection sleeps and tries
again, up to 100 ms apart, and a writer that came later can take the lock in between, again and
again. Under a burst of writes from this process's own threads one of them could lose every
time until its `busy_timeout` ran out ("database is locked", a 503). So this process's writers
first wait in a first-come, first-served queue of its own (`WriterQueue`), and only one of them
at a time asks SQLite for the lock: SQLite's timeout is left to wait for other processes.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out, whatever the backend keeps (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# JSON everywhere; JSONB on PostgreSQL so it can be indexed later.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def enum_column(vocabulary: type[StrEnum], length: int) -> sa.Enum:
    """A column of `vocabulary`'s members, stored as their values in a VARCHAR(`length`).

    A plain VARCHAR, not a database enum nor a CHECK constraint: the stored strings stay what they
    always were, so a new member needs no migration. Rows read back as members; a string that is
    not one is refused on the way in, and a stored one that is not one fails the read loudly.
    """
    return sa.Enum(
        vocabulary,
        native_enum=False,
        create_constraint=False,
        values_callable=lambda members: [member.value for member in members],
        length=length,
        validate_strings=True,
    )


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_db_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    # hide_parameters: bound values (node vars, token digests) stay out of SQLAlchemy's statement
    # log (on at verbosity 5) and out of the text of its errors, which a 500 logs.
    if not _is_sqlite(url):
        return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)

    # The driver's own transaction handling is switched off (isolation_level=None) so that the
    # BEGIN we emit below is the only one, as SQLAlchemy's SQLite docs describe.
    engine = sa.create_engine(
        url,
        connect_args={"isolation_level": None, "check_same_thread": False},
        pool_size=8,
        max_overflow=8,
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "immediate" else "BEGIN")

    return engine


class WriterQueue:
    """A lock handed to its waiters in the order they came (`threading.Lock` is not: the thread
    that lets it go can take it back before a woken waiter runs)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def acquire(self, timeout_s: float) -> bool:
        """Wait for the lock, at most `timeout_s`; whether it was taken."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=timeout_s):
            return True
        with self._mutex:
            if turn in self._waiters:
                self._waiters.remove(turn)
                return False
        # `release` handed the lock over between the timeout and the check: it is ours now.
        return True

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # straight to the next: `_held` stays True
            else:
                self._held = False


class DatabaseClosed(RuntimeError):
    """The database was used after `dispose()`: a thread outlived the daemon's shutdown order."""


class Database:
    """The engine and the two kinds of session the services use.

    Other layers add their session listeners with `instrument_sessions` (the timeline's event
    queue does): this module stays below every domain. After `dispose()` a read or write raises
    `DatabaseClosed` instead of quietly opening a new pool."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self.engine = create_db_engine(url, busy_timeout_ms=busy_timeout_ms)
        self._writer_queue = WriterQueue() if _is_sqlite(url) else None
        self._busy_timeout_s = busy_timeout_ms / 1000
        writer = self.engine.execution_options(sqlite_begin="immediate")
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(writer, expire_on_commit=False)
        self._instrumented: set[str] = set()
        self.disposed = False

    def instrument_sessions(self, mark: str, listeners: Mapping[str, Callable[..., None]]) -> None:
        """Attach session `listeners` (SQLAlchemy session event name -> function) to every
        session this database makes, and put `mark` in their `info`, once per mark."""
        if mark in self._instrumented:
            return
        self._instrumented.add(mark)
        for maker in (self._reads, self._writes):
            for identifier, fn in listeners.items():
                event.listen(maker, identifier, fn)
            maker.configure(info={**maker.kw.get("info", {}), mark: True})

    @contextmanager
    def read(self) -> Iterator[Session]:
        self._check_open()
        with self._reads() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends, and rolls back if it raises."""
        self._check_open()
        with self._writer_turn(), self._writes() as session, session.begin():
            yield session

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """On SQLite, this process's turn to write (see the module's docstring)."""
        queue = self._writer_queue
        if queue is None:
            yield
            return
        if not queue.acquire(self._busy_timeout_s):
            # What SQLite raises when its own wait runs out, so every caller handles one error.
            raise sa_exc.OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            )
        try:
            yield
        finally:
            queue.release()

    def _check_open(self) -> None:
        if self.disposed:
            raise DatabaseClosed("the database was used after clusterm closed it")

    def dispose(self) -> None:
        self.disposed = True
        self.engine.dispose()


# --- migrations ------------------------------------------------------------------------------


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the database-wide lock under which one replica migrates while the others wait.

    PostgreSQL: a session advisory lock, keyed by the database and schema, on a connection of its
    own that is closed (and the lock with it) when the block ends or the process dies. SQLite has
    one clusterm process per file (app.files.lock_sqlite) and needs none."""
    if _is_sqlite(url):
        yield
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            key = sa.func.hashtextextended(
                sa.literal("clusterm-migrations:")
                + sa.func.current_database()
                + "/"
                + sa.func.current_schema(),
                0,
            )
            conn.execute(sa.select(sa.func.pg_advisory_lock(key)))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                conn.commit()
    finally:
        engine.dispose()


def unknown_revisions(bind: Engine | sa.Connection) -> set[str]:
    """The database's migrations this code does not know: a newer clusterm migrated it."""
    return current_revisions(bind) - known_revisions()


@functools.cache
def known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(rev.revision for rev in script.walk_revisions())


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("")).get_heads())


def current_revisions(bind: Engine | sa.Connection) -> set[str]:
    if isinstance(bind, sa.Connection):
        if not sa.inspect(bind).has_table("alembic_version"):
            return set()
        return set(bind.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    with bind.connect() as conn:
        return current_revisions(conn)
