"""The data dir is private: a real daemon started on a data dir made world-readable beforehand
(a hand-made 0755 dir, a 0644 database) makes it 0700 and its files 0600, and everything it writes
later (SQLite's -wal and -shm, the admin token, job files) is private too. Links out of the data
dir are not followed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app import db as store
from app.config import load_settings
from app.main import create_app
from tests.core.server import Server
from tests.jobs.conftest import local_node, wait_finished


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def world_readable_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A data dir as a user or a volume may leave it, and files outside it reached by links."""
    old_umask = os.umask(0o022)
    try:
        data_dir = tmp_path / "data"
        data_dir.mkdir(mode=0o755)
        (data_dir / "notes.txt").write_text("notes")
        (data_dir / "old").mkdir()
        (data_dir / "old" / "x.log").write_text("log")
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "shared.txt").write_text("not clusterm's")
        (data_dir / "link-to-file").symlink_to(outside / "shared.txt")
        (data_dir / "link-to-dir").symlink_to(outside)
    finally:
        os.umask(old_umask)
    os.chmod(data_dir, 0o755)  # noqa: S103  (the loose start this test repairs)
    return data_dir, outside


def assert_outside_untouched(outside: Path) -> None:
    assert mode(outside) == 0o755
    assert mode(outside / "shared.txt") == 0o644


def private_everywhere(root: Path) -> list[str]:
    """Every entry under `root` (links excepted) that group or others may read or enter."""
    loose = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if not path.is_symlink() and mode(path) & 0o077:
                loose.append(f"{path.relative_to(root)} {mode(path):o}")
    return loose


@pytest.fixture
def sqlite_in_data_dir(db_url: str, tmp_path: Path) -> str:
    # The daemon's default: its SQLite database inside the data dir (PostgreSQL stays as it is).
    return (
        f"sqlite:///{tmp_path / 'data' / 'clusterm.db'}" if db_url.startswith("sqlite") else db_url
    )


@pytest.fixture
def server(tmp_path: Path, sqlite_in_data_dir: str) -> Iterator[Server]:
    server = Server(tmp_path / "data", tmp_path / "stderr.log", sqlite_in_data_dir)
    try:
        yield server
    finally:
        server.stop()


def run_job(client: httpx.Client) -> dict[str, object]:
    client.post("/nodes", json=[local_node("m1", "master")]).raise_for_status()
    job = client.post("/commission/nodes", json={"nodes": ["m1"]})
    assert job.status_code == 202, job.text
    return wait_finished(client, job.json()["id"], timeout_s=120)


def test_a_daemon_makes_its_data_dir_private(
    server: Server, tmp_path: Path, sqlite_in_data_dir: str
) -> None:
    data_dir, outside = world_readable_tree(tmp_path)
    sqlite = sqlite_in_data_dir.startswith("sqlite")
    if sqlite:
        # A database left world-readable, as a start under umask 022 made it before.
        store.upgrade(sqlite_in_data_dir)
        os.chmod(data_dir / "clusterm.db", 0o644)

    server.start()
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "notes.txt") == 0o600
    assert mode(data_dir / "old") == 0o700
    assert mode(data_dir / "old" / "x.log") == 0o600
    assert mode(data_dir / "admin.token") == 0o600
    assert_outside_untouched(outside)
    assert (data_dir / "link-to-file").is_symlink()

    client = server.client()
    assert run_job(client)["status"] == "successful"
    jobs_dir = data_dir / "jobs"
    assert jobs_dir.is_dir()
    assert any(path.is_file() for path in jobs_dir.rglob("*")), "the job left no file to check"
    if sqlite:
        # WAL mode: the side files exist while the daemon runs.
        for name in ("clusterm.db", "clusterm.db-wal", "clusterm.db-shm"):
            assert mode(data_dir / name) == 0o600, name
    assert private_everywhere(data_dir) == []
    assert_outside_untouched(outside)


def test_the_app_built_directly_is_private_too(tmp_path: Path, db_url: str) -> None:
    """Tests and uvicorn users build the app without `clusterm serve`: the same rules hold, and
    a SQLite database kept outside the data dir is made private with its side files."""
    data_dir, outside = world_readable_tree(tmp_path)
    if db_url.startswith("sqlite"):
        store.upgrade(db_url)
        database = Path(db_url.removeprefix("sqlite:///"))
        os.chmod(database, 0o644)
    previous = os.umask(0o022)
    try:
        app = create_app(load_settings(data_dir=data_dir, database_url=db_url))
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
            current = os.umask(0o077)
            assert current == 0o077  # the start-up set it
            assert mode(data_dir) == 0o700
            assert private_everywhere(data_dir) == []
            if db_url.startswith("sqlite"):
                assert mode(database) == 0o600
                for side in ("-wal", "-shm"):
                    assert mode(Path(f"{database}{side}")) == 0o600
    finally:
        os.umask(previous)
    assert_outside_untouched(outside)


def test_a_shared_directory_as_data_dir_is_left_alone(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A data dir pointed at a sticky, world-writable dir (as /tmp is) by mistake: making it
    and everything in it private would break its other users, so clusterm warns instead."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103  (a /tmp-like directory)
    other = shared / "someone-elses.txt"
    other.write_text("theirs")
    os.chmod(other, 0o644)
    with TestClient(create_app(load_settings(data_dir=shared, database_url=db_url))) as client:
        assert client.get("/readyz").status_code == 200
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert mode(other) == 0o644
    assert mode(shared / "admin.token") == 0o600  # what clusterm writes is still private
    assert "is a shared directory" in caplog.text
