"""Concurrent read-then-write transactions on SQLite queue instead of deadlocking."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from app import db as store
from app.nodes import service
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate
from app.timeline import service as timeline


def test_concurrent_read_modify_write_never_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store.upgrade(url)
    db = timeline.attach(store.Database(url, busy_timeout_ms=10_000))
    with db.write() as session:
        service.register_nodes(
            session=session, nodes=[NodeCreate(name="n1", address="10.0.0.1")], actor="test"
        )

    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(25):
                # Read, then write, in one transaction: with a deferred BEGIN two of these
                # deadlock on the lock upgrade and one fails with "database is locked".
                with db.write() as session:
                    node = session.scalar(sa.select(Node).where(Node.name == "n1"))
                    assert node is not None
                    node.ssh_port = node.ssh_port + 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        assert session.scalar(sa.select(Node.ssh_port)) == 22 + 8 * 25
    db.dispose()
