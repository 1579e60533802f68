"""Private files: the data dir holds the database, the admin token, known hosts and job files.

The daemon runs with umask 077, so everything it creates is readable by its own user only; that
covers what SQLite makes beside the database later (`-wal`, `-shm`) and every job's inventory and
extra-vars files. What existed before the start (a Docker volume, a directory made by hand with
0755, a database created world-readable by an older clusterm) is made private at each start:
group and other permissions are removed from the data dir and from everything in it, a 0644 file
becomes 0600 and a 0755 directory 0700. Symbolic links are neither changed nor followed, so no
file outside the data dir is touched through one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger("clusterm")

PRIVATE_UMASK = 0o077
_GROUP_OTHER = 0o077
# What SQLite keeps beside a database file.
_SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def _strip(path: str | Path, mode: int, *, dir_fd: int | None = None, shown: str = "") -> None:
    private = stat.S_IMODE(mode) & ~_GROUP_OTHER
    if private == stat.S_IMODE(mode):
        return
    try:
        os.chmod(path, private, dir_fd=dir_fd)
    except OSError as exc:
        # Not ours (a volume made by root, a read-only mount): say so, and keep starting.
        log.warning("cannot make %s private (mode %o): %s", shown or path, private, exc.strerror)


def make_tree_private(root: Path) -> None:
    """Remove group and other permissions from `root` and everything under it, links excepted."""
    _strip(root, root.stat().st_mode)
    # fwalk works through directory descriptors and does not descend into linked directories.
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in (*dirnames, *filenames):
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile (a job dir being rotated)
            if stat.S_ISLNK(info.st_mode):
                continue
            _strip(name, info.st_mode, dir_fd=dir_fd, shown=os.path.join(dirpath, name))


def make_sqlite_private(database_url: str) -> None:
    """The database and its side files, when the database is a SQLite file outside the data dir."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    for suffix in _SQLITE_SIDE_FILES:
        path = Path(url.database + suffix)
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            _strip(path, info.st_mode)


def _shared(data_dir: Path) -> bool:
    # A data dir pointed at a directory others rely on (/, a home, a sticky /tmp-like dir) is a
    # mistake: making it and all it holds private would break them, so it is left alone.
    resolved = data_dir.resolve()
    return resolved in (Path("/"), Path.home().resolve()) or bool(
        resolved.stat().st_mode & stat.S_ISVTX
    )


def prepare_data_dir(data_dir: Path, database_url: str) -> None:
    """Set the private umask, create the data dir 0700, and make what is already there private."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _shared(data_dir):
        log.warning(
            "data dir %s is a shared directory (/, a home or a sticky dir): its permissions are "
            "left as they are; give clusterm a data dir of its own (CLUSTERM_DATA_DIR)",
            data_dir,
        )
    else:
        make_tree_private(data_dir)
    make_sqlite_private(database_url)


# --- one process per SQLite file -----------------------------------------------------------------


class AlreadyRunning(RuntimeError):
    """Another clusterm process serves this SQLite database."""


# Locks this process holds: path -> (open file, users). Two runtimes of one process (tests, a
# restart in place) share the lock: they are one daemon, not two.
_held: dict[Path, tuple[int, int]] = {}


def lock_sqlite(database_url: str, *, owner: dict[str, object]) -> Callable[[], None]:
    """Take the lock that makes one clusterm process per SQLite file; return its release.

    SQLite lets two processes open one file, and two daemons would both run jobs, reverts and the
    drift watch on it: the second one is refused at start-up, told who holds the file. `owner`
    (pid, address, start time) is written into the lock file for that message. The kernel drops
    the lock when the process dies, however it dies: a crash never leaves the file locked."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return lambda: None
    path = Path(url.database + ".lock").absolute()
    if path in _held:
        fd, users = _held[path]
        _held[path] = (fd, users + 1)
        return lambda: _release(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = _read_owner(fd)
        os.close(fd)
        raise AlreadyRunning(
            f"another clusterm ({other}) serves the SQLite database {url.database}: stop it "
            "first, or give this one another data dir. SQLite takes one clusterm process; to run "
            "several replicas, use PostgreSQL (database_url, see docs/replicas.md)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(owner).encode(), 0)
    _held[path] = (fd, 1)
    return lambda: _release(path)


def _read_owner(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        owner = {}
    if not isinstance(owner, dict) or not owner:
        return "a process that left no details"
    return ", ".join(f"{key} {value}" for key, value in owner.items())


def _release(path: Path) -> None:
    fd, users = _held.pop(path, (-1, 0))
    if users > 1:
        _held[path] = (fd, users - 1)
    elif fd >= 0:
        os.close(fd)  # closing the only descriptor drops the lock
