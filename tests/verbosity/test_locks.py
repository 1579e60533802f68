"""The targets' locks: in-process on SQLite, rows locked in the database on PostgreSQL, where
they hold across replicas (two Database objects stand for two replicas' connections)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app.db import Database, upgrade
from app.verbosity.locks import DatabaseLocks, LocalLocks, TargetLocks, target_locks

KEYS = [("kubelet", f"node{n:04d}") for n in range(1000)]


@pytest.fixture
def replicas(db_url: str) -> Iterator[tuple[Database, Database]]:
    upgrade(db_url)
    first, second = Database(db_url), Database(db_url)
    yield first, second
    first.dispose()
    second.dispose()


def statements(db: Database) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    return seen


def test_the_locks_suit_the_database(replicas: tuple[Database, Database]) -> None:
    db = replicas[0]
    expected = DatabaseLocks if db.engine.dialect.name == "postgresql" else LocalLocks
    assert type(target_locks(db)) is expected


def test_a_thousand_targets_are_locked_in_a_constant_number_of_statements(
    replicas: tuple[Database, Database],
) -> None:
    db = replicas[0]
    locks = target_locks(db)
    seen = statements(db)

    async def hold() -> None:
        async with locks.hold(list(reversed(KEYS))):
            pass

    asyncio.run(hold())
    work = [s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
    if db.engine.dialect.name == "postgresql":
        assert len(work) == 2, work  # make the rows, lock them: one statement each
        with db.read() as session:
            rows = session.execute(sa.text("SELECT count(*) FROM verbosity_lock")).scalar_one()
        assert rows == len(KEYS)
    else:
        assert work == []  # one process: no database round trip at all


def test_two_replicas_take_turns_on_a_shared_target(replicas: tuple[Database, Database]) -> None:
    first_db, second_db = replicas
    shared = target_locks(first_db)
    # On SQLite there is one process, hence one set of locks; on PostgreSQL each replica has its
    # own, and only the database makes them take turns.
    first: TargetLocks = shared
    second: TargetLocks = target_locks(second_db) if isinstance(shared, DatabaseLocks) else shared
    order: list[str] = []

    async def operation(locks: TargetLocks, name: str, keys: list[tuple[str, str]]) -> None:
        async with locks.hold(keys):
            order.append(f"{name} in")
            await asyncio.sleep(0.3)
            order.append(f"{name} out")

    async def both() -> None:
        one = asyncio.create_task(operation(first, "a", [KEYS[0], KEYS[1]]))
        await asyncio.sleep(0.1)
        # Overlapping in another order: waits, and cannot deadlock with the first.
        await asyncio.gather(one, operation(second, "b", [KEYS[1], KEYS[0], KEYS[2]]))

    asyncio.run(both())
    assert order == ["a in", "a out", "b in", "b out"]
