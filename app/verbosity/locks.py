"""One operation at a time per target, on one process or across replicas.

Two operations on the same target (a change and a revert, say) must not interleave, or the
component could end at one level while the database records the other. So an operation holds its
targets' locks from before it reads what clusterm knew until its outcomes are recorded.

- `LocalLocks` (SQLite: one process): an asyncio lock per target.
- `DatabaseLocks` (PostgreSQL: replicas on one database): a `verbosity_lock` row per target,
  locked `FOR UPDATE` in a transaction of its own held open while the PUTs are sent, by whichever
  replica runs the operation. The rows are made as needed (`INSERT ... ON CONFLICT DO NOTHING`),
  then locked in the database's own order, so two operations over overlapping targets never wait
  on each other in a cycle. Each step is one statement however many targets (the keys travel as
  two arrays), so a fan-out to a thousand nodes costs two round trips, not two thousand. Within
  one replica the local locks are taken first: operations queued behind each other there do not
  each hold a database connection while they wait.

Locks are always acquired in sorted order, and released when the operation ends (commit), or when
the replica dies (its connection closes, and PostgreSQL ends the transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import anyio.to_thread
import sqlalchemy as sa

from app.db import Database, DatabaseClosed

Key = tuple[str, str]

# Both statements bind the keys as two arrays: one statement, two parameters, any number of keys.
_MAKE_ROWS = sa.text(
    "INSERT INTO verbosity_lock (component, node_name) "
    "SELECT c, n FROM unnest(CAST(:components AS text[]), CAST(:nodes AS text[])) AS k(c, n) "
    "ORDER BY c, n ON CONFLICT DO NOTHING"
)
_LOCK_ROWS = sa.text(
    "SELECT component, node_name FROM verbosity_lock "
    "WHERE (component, node_name) IN "
    "(SELECT c, n FROM unnest(CAST(:components AS text[]), CAST(:nodes AS text[])) AS k(c, n)) "
    "ORDER BY component, node_name FOR UPDATE"
)


class TargetLocks(Protocol):
    def hold(self, keys: Sequence[Key]) -> AbstractAsyncContextManager[None]:
        """Hold every key's lock for the block; waits for whoever holds one of them."""


def target_locks(db: Database) -> TargetLocks:
    """The locks that suit the database: across replicas on PostgreSQL, in-process on SQLite."""
    if db.engine.dialect.name == "postgresql":
        return DatabaseLocks(db)
    return LocalLocks()


class LocalLocks:
    def __init__(self) -> None:
        # key -> (lock, number of holders and waiters); an entry goes when nobody needs it.
        self._locks: dict[Key, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, keys: Sequence[Key]) -> AsyncIterator[None]:
        # Sorted, so two operations over overlapping targets cannot wait on each other in a cycle.
        ordered = sorted(set(keys))
        for key in ordered:
            lock, users = self._locks.get(key, (asyncio.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        taken: list[asyncio.Lock] = []
        try:
            for key in ordered:
                lock = self._locks[key][0]
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in taken:
                lock.release()
            for key in ordered:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


# Operations holding their rows at once, per replica. Each holds a pooled connection for its locks
# and needs another for its reads and writes: unbounded, a burst of operations on distinct
# targets would take every connection for locks and then wait for one forever (the pool's
# timeout), starving the job log and the drift watch as well.
MAX_HOLDERS = 4


class DatabaseLocks:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._local = LocalLocks()
        self._holders = asyncio.Semaphore(MAX_HOLDERS)

    @asynccontextmanager
    async def hold(self, keys: Sequence[Key]) -> AsyncIterator[None]:
        ordered = sorted(set(keys))
        if not ordered:
            yield
            return
        async with self._local.hold(ordered), self._holders:
            # Shielded, both: a request cancelled while its thread waits for the rows must still
            # get the connection back and end its transaction, or the rows would stay locked
            # for as long as the connection lives.
            with anyio.CancelScope(shield=True):
                conn = await anyio.to_thread.run_sync(self._acquire, ordered)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._release, conn)

    def _acquire(self, keys: list[Key]) -> sa.Connection:
        if self.db.disposed:
            raise DatabaseClosed("the database was used after clusterm closed it")
        conn = self.db.engine.connect()
        try:
            params = {"components": [k[0] for k in keys], "nodes": [k[1] for k in keys]}
            conn.begin()
            conn.execute(_MAKE_ROWS, params)
            conn.execute(_LOCK_ROWS, params).all()
        except BaseException:
            conn.close()  # rolls back what was taken
            raise
        return conn

    @staticmethod
    def _release(conn: sa.Connection) -> None:
        try:
            conn.commit()
        finally:
            conn.close()
