"""`GET /version`: what a replica runs, as support asks for it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import ansible.release
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.config import VERSION
from app.db import Database
from app.versions import versions

FIELDS = [
    "clusterm",
    "python",
    "ansible-core",
    "ansible-runner",
    "database",
    "database_version",
    "schema_revision",
    "schema_head",
]

RoleHeaders = Callable[[str], dict[str, str]]


def test_versions_as_json(client: TestClient, as_role: RoleHeaders, db: Database) -> None:
    r = client.get("/version", headers=as_role("viewer"))
    assert r.status_code == 200, r.text
    found = r.json()
    assert list(found) == FIELDS
    assert found["clusterm"] == VERSION
    assert found["ansible-core"] == ansible.release.__version__
    assert found["ansible-runner"][0].isdigit()
    with db.read() as session:
        stored = session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert found["schema_revision"] == stored == found["schema_head"]
    if db.engine.dialect.name == "sqlite":
        assert found["database"] == "sqlite"
        assert found["database_version"] == sqlite3.sqlite_version
    else:
        assert found["database"] == "postgresql"
        assert found["database_version"].startswith("PostgreSQL ")


def test_versions_as_text(client: TestClient, as_role: RoleHeaders) -> None:
    found = client.get("/version", headers=as_role("viewer")).json()
    for r in (
        client.get("/version", params={"format": "text"}, headers=as_role("viewer")),
        client.get("/version", headers={**as_role("viewer"), "Accept": "text/plain"}),
    ):
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        lines = r.text.splitlines()
        assert lines[0].split() == ["NAME", "VERSION"]
        rows = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in lines[1:]}
        assert rows == found


def test_an_unknown_format_is_422_naming_the_choices(
    client: TestClient, as_role: RoleHeaders
) -> None:
    r = client.get("/version", params={"format": "yaml"}, headers=as_role("viewer"))
    assert r.status_code == 422
    assert "format" in r.json()["message"]
    assert "'json' or 'text'" in r.json()["message"]


def test_a_database_that_cannot_be_reached_is_said_so() -> None:
    # Nothing listens on port 1: the rest of the answer is still worth having.
    broken = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        found = versions(broken)
    finally:
        broken.dispose()
    assert found["database"] == "postgresql"
    assert found["database_version"].startswith("unknown: the database cannot be reached")
    assert found["clusterm"] == VERSION
