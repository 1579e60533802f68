"""What this replica runs: clusterm, Python, Ansible, the database and its schema.

The first thing support asks. A database that cannot be reached is not an error here: its fields
say so, and the rest is still worth reading.
"""

from __future__ import annotations

import importlib.metadata
import platform

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app import db as store
from app.config import VERSION
from app.db import Database

# The query that names the server's version, by SQLAlchemy dialect; any other dialect answers
# with what its driver reported on connecting.
_SERVER_VERSION_SQL = {
    "postgresql": "SELECT version()",
    "sqlite": "SELECT sqlite_version()",
}


def _package(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions(db: Database) -> dict[str, str]:
    """The versions, by name, in the order a person reads them."""
    dialect = db.engine.dialect.name
    found = {
        "clusterm": VERSION,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "ansible-core": _package("ansible-core"),
        "ansible-runner": _package("ansible-runner"),
        "database": dialect,
    }
    try:
        with db.read() as session:
            conn = session.connection()
            sql = _SERVER_VERSION_SQL.get(dialect)
            if sql is None:
                info = conn.dialect.server_version_info or ()
                server = ".".join(str(part) for part in info) or "unknown"
            else:
                server = str(conn.execute(sa.text(sql)).scalar_one())
            revisions = store.current_revisions(conn)
    except SQLAlchemyError as exc:
        unreachable = f"unknown: the database cannot be reached ({type(exc).__name__})"
        found.update(database_version=unreachable, schema_revision=unreachable)
    else:
        found["database_version"] = server
        found["schema_revision"] = ",".join(sorted(revisions)) or "none (not migrated)"
    # What this replica's code migrates to: a schema_revision behind it wants `clusterm db upgrade`.
    found["schema_head"] = ",".join(sorted(store.head_revisions()))
    return found
