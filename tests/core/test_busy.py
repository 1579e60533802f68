"""A write that cannot get the database's lock in time is a 503 with Retry-After, never a 500,
and nothing of it is stored; the same request succeeds once the lock is gone.

The lock is held by another process, as in the field (a backup, `sqlite3` at a prompt, a second
daemon on the same file): on SQLite `BEGIN IMMEDIATE` past `sqlite_busy_timeout_ms`; on PostgreSQL
a table lock past the `lock_timeout` given in the database URL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import load_settings
from app.main import create_app
from tests.conftest import node_body

BUSY_TIMEOUT_MS = 300

# Takes the write lock, says so, and keeps it until its stdin closes.
HOLDER = """
import sys
url = sys.argv[1]
if url.startswith("sqlite"):
    import sqlite3
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
else:
    import sqlalchemy as sa
    conn = sa.create_engine(url).connect()
    conn.execute(sa.text("LOCK TABLE node, token IN EXCLUSIVE MODE"))  # reads go on, writes wait
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def lock_held(url: str) -> Iterator[None]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()  # the process exits, and the lock goes with it
        holder.wait(timeout=30)
        holder.stdout.close()


def bounded_waits(url: str) -> str:
    """The URL the daemon uses: on PostgreSQL with a lock timeout, as an operator would set one."""
    if url.startswith("sqlite"):
        return url
    return f"{url}%20-clock_timeout%3D{BUSY_TIMEOUT_MS}"  # appended to the fixture's options=


@pytest.fixture
def busy_client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=bounded_waits(db_url),
        sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        token = settings.admin_token_file.read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def test_a_write_behind_another_process_lock_is_a_503_then_succeeds(
    busy_client: TestClient, db_url: str
) -> None:
    client = busy_client
    assert client.get("/info/nodes").json() == []  # the token is known before the lock
    body = node_body("behind-lock")

    with lock_held(db_url):
        started = time.monotonic()
        refused = client.post("/nodes", json=body)
        waited = time.monotonic() - started
        # Readers are not held up by a writer: the node list still answers, without the node.
        during = client.get("/info/nodes")

    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    error = refused.json()
    assert error["error"] == "DatabaseBusy"
    assert "busy" in error["message"] or "lock" in error["message"]
    assert "nothing was changed" in error["message"]
    assert "send the same request again after Retry-After seconds" in error["message"]
    assert error["retry_after_s"] == 1
    assert waited >= BUSY_TIMEOUT_MS / 1000 * 0.9  # it did wait for the lock first
    assert during.status_code == 200
    assert during.json() == []
    history = client.get("/info/timeline", params={"node": "behind-lock"}).json()
    assert history["items"] == []  # no event of a registration that did not happen

    again = client.post("/nodes", json=body)
    assert again.status_code == 201, again.text
    assert client.get("/info/node/behind-lock").json()["address"] == "127.0.0.1"
    reasons = [
        e["reason"]
        for e in client.get("/info/timeline", params={"node": "behind-lock"}).json()["items"]
    ]
    assert reasons == ["NodeRegistered"]


def test_a_token_first_used_behind_the_lock_is_a_503_too(
    busy_client: TestClient, db_url: str
) -> None:
    # The first use of a token records when it was used: a write, even for a read-only route.
    with lock_held(db_url):
        refused = busy_client.get("/info/nodes")
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == "DatabaseBusy"
    assert busy_client.get("/info/nodes").status_code == 200
