"""The schema is Alembic's: it goes up, down and up again, and matches the models exactly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import app.models  # noqa: F401  (every table on the metadata)
from app import db as store
from app.db import Base


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_an_empty_database(db_url: str) -> None:
    assert tables(db_url) == set()
    store.upgrade(db_url)
    expected = set(Base.metadata.tables)
    assert tables(db_url) == expected
    store.downgrade(db_url, "base")
    assert tables(db_url) == set()
    store.upgrade(db_url)
    assert tables(db_url) == expected
    engine = store.create_db_engine(db_url)
    assert store.current_revisions(engine) == store.head_revisions()
    engine.dispose()


def test_migrations_match_the_models(db_url: str) -> None:
    store.upgrade(db_url)
    engine = store.create_db_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], "the models and the migrations disagree; write a migration"


def test_sqlite_connections_get_the_pragmas(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    engine = store.create_db_engine(url, busy_timeout_ms=1234)
    with engine.connect() as conn:
        pragma = conn.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert pragma("PRAGMA busy_timeout").scalar() == 1234
        assert pragma("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
