"""The schema is Alembic's: it goes up, down and up again, and matches the models exactly."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import app.models  # noqa: F401  (every table on the metadata)
from app import db as store
from app.db import Base, JSONType, UTCDateTime


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


def test_commissioned_at_is_backfilled_from_the_timeline_and_dropped_again(db_url: str) -> None:
    """0007: a node in the cluster gets its last successful commission from the timeline, or
    its registration time when retention purged that event; a node outside gets none."""
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first, last = created + dt.timedelta(days=1), created + dt.timedelta(days=9)
    store.upgrade(db_url, "0006")
    node = sa.table(
        "node",
        *(sa.column(c) for c in ("id", "name", "address", "ssh_port", "ssh_user", "host_group")),
        sa.column("labels", JSONType),
        sa.column("vars", JSONType),
        sa.column("state"),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    event = sa.table(
        "timeline_event",
        *(sa.column(c) for c in ("node_id", "node_name", "action", "reason", "result")),
        *(sa.column(c) for c in ("severity", "from_state", "to_state")),
        sa.column("occurred_at", UTCDateTime()),
    )
    states = {"m1": "commissioned", "m2": "maintenance", "m3": "updating", "m4": "decommissioned"}
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            node.insert(),
            [
                {"id": i, "name": name, "address": "127.0.0.1", "ssh_port": 22, "ssh_user": "u",
                 "host_group": "master", "labels": {}, "vars": {}, "state": state,
                 "created_at": created, "updated_at": last + dt.timedelta(days=1)}
                for i, (name, state) in enumerate(states.items(), start=1)
            ],
        )  # fmt: skip
        moves = [
            (1, "provisioning", "commissioned", first),
            (1, "provisioning", "commissioned", last),  # commissioned again after a decommission
            (1, "commissioned", "maintenance", last + dt.timedelta(hours=1)),
            (3, "provisioning", "commissioned", first),
            (4, "provisioning", "commissioned", first),
        ]
        conn.execute(
            event.insert(),
            [
                {"node_id": node_id, "node_name": f"m{node_id}", "action": "commission",
                 "reason": "HostSucceeded", "result": "succeeded", "severity": "info",
                 "from_state": before, "to_state": after, "occurred_at": at}
                for node_id, before, after, at in moves
            ],
        )  # fmt: skip
    store.upgrade(db_url)
    backfilled = sa.table("node", sa.column("name"), sa.column("commissioned_at", UTCDateTime()))
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(backfilled.c.name, backfilled.c.commissioned_at)).all())
    # m2's commission was purged: its registration time, never later than the commission.
    assert rows == {"m1": last, "m2": created, "m3": first, "m4": None}
    store.downgrade(db_url, "0006")
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("node")}
    assert "commissioned_at" not in columns
    assert {"name", "state", "in_cluster"} <= columns
    engine.dispose()
