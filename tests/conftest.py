"""Shared fixtures: a real migrated database per test (SQLite, and PostgreSQL when
CLUSTERM_TEST_DATABASE_URL is set), the real app, and a token for each role."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth import service as auth
from app.config import Settings, load_settings
from app.db import Database
from app.main import create_app
from app.runtime import runtime_of
from tests.pg import fresh_schema

PG_URL = os.environ.get("CLUSTERM_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
ROLES = ("viewer", "operator", "admin")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new schema in the PostgreSQL test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clusterm.db'}"
        return
    assert PG_URL is not None
    with fresh_schema(PG_URL) as url:
        yield url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    # One replica on PostgreSQL: a lease long enough that a loaded test machine never makes it
    # step down (failover has tests of its own, tests/cluster).
    return load_settings(data_dir=data_dir, database_url=db_url, lease_ttl_s=15.0)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # The context manager runs the lifespan: migrations, the bootstrap token.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def db(client: TestClient) -> Database:
    database: Database = runtime_of(client.app).db
    return database


@pytest.fixture
def tokens(db: Database, settings: Settings) -> dict[str, str]:
    """One token per role, named after it (the actor on the timeline is "viewer", "operator" or
    "admin"). The admin token is the one the daemon wrote on its first start."""
    out = {"admin": settings.admin_token_file.read_text().strip()}
    with db.write() as session:
        for role in ("viewer", "operator"):
            out[role] = auth.create_token(session=session, name=role, role=role)
    return out


@pytest.fixture
def as_role(tokens: dict[str, str]) -> Callable[[str], dict[str, str]]:
    def headers(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}

    return headers


@pytest.fixture
def admin(client: TestClient, tokens: dict[str, str]) -> TestClient:
    """The client with the admin token on every request."""
    client.headers["Authorization"] = f"Bearer {tokens['admin']}"
    return client


@contextmanager
def admin_client(
    settings: Settings, *, demo: bool = False, raise_server_exceptions: bool = True
) -> Iterator[TestClient]:
    """A daemon of its own `settings`, run (lifespan included) for the block, with the admin
    token it wrote on its first start on every request: for a test that needs other settings
    than the `admin` fixture's."""
    app = create_app(settings, demo=demo)
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        client.headers["Authorization"] = f"Bearer {settings.admin_token_file.read_text().strip()}"
        yield client


def node_body(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "address": "127.0.0.1", **extra}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failing test: fail the run when anything was skipped."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and reporter and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; a skipped test fails CI", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked backend_independent runs on SQLite only: what it checks (Ansible's
    behaviour, a boundary, the CLI's output) is the same on every database, and each of these
    tests costs a playbook run. The job path on PostgreSQL keeps tests of its own
    (tests/jobs/test_api.py, test_logstore.py, test_runner.py, tests/cluster)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("db_url") == "postgresql"
        independent = item.get_closest_marker("backend_independent") is not None
        (dropped if on_pg and independent else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
