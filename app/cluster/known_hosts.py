"""The SSH host keys every replica trusts, kept in the database (`known_host`).

SSH reads and writes a file (settings.known_hosts_file, given to it as UserKnownHostsFile by
app.ansible.env). Replicas do not share a data dir, so the file alone would make each replica
trust its own keys: a key accepted by one leader (policy accept-new) would be unknown to the
next, which would then accept whatever key a host presents, or refuse it (policy strict). So
around every playbook run the leader:

- `materialize`s the database's lines into the file before the run (atomically, mode 0600), and
- `collect`s the file's lines into the database after it: any line not there yet (a key SSH
  accepted during the run) is inserted, identified by the sha256 of the line.

Lines are only ever added: a host whose key changed is refused by SSH, as it would be with one
daemon, until an operator removes the stale line, from the table and from the replicas' files
(a line a file still holds is stored again). A line an operator adds to a file by hand is
stored at the next run like any other.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.cluster.models import KnownHost
from app.db import Database, utcnow

log = logging.getLogger("clusterm.cluster")


def digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def _lines(text: str) -> list[str]:
    # Blank lines and comments carry no key; trailing spaces would make one line two digests.
    return [s for s in (raw.strip() for raw in text.splitlines()) if s and not s.startswith("#")]


@contextmanager
def shared(db: Database, path: Path) -> Iterator[None]:
    """Around a playbook run: the database's keys in the file before, the file's new keys in
    the database after. A failed store is only logged: the next run's `materialize` stores the
    lines it missed, and the run's own result must not be lost to it."""
    materialize(db, path)
    try:
        yield
    finally:
        try:
            collect(db, path)
        except Exception:
            log.exception("could not store the host keys this run learnt; the next run will")


def materialize(db: Database, path: Path) -> int:
    """Write every known host of the database to `path`; return how many lines it holds.

    Lines the file alone holds are stored first, not dropped: keys an operator put there for
    the strict policy (as with one daemon), or accepted by a run whose `collect` never came."""
    collect(db, path)
    with db.read() as session:
        lines = list(session.scalars(sa.select(KnownHost.line).order_by(KnownHost.id)))
    _write_atomically(path, "".join(f"{line}\n" for line in lines))
    return len(lines)


def collect(db: Database, path: Path) -> int:
    """Store every line of `path` the database lacks; return how many were new."""
    try:
        lines = _lines(path.read_text())
    except FileNotFoundError:
        return 0
    if not lines:
        return 0
    rows = {digest(line): line for line in lines}
    with db.write() as session:
        known = set(
            session.scalars(sa.select(KnownHost.digest).where(KnownHost.digest.in_(list(rows))))
        )
        new = [
            {"digest": d, "line": line, "added_at": utcnow()}
            for d, line in rows.items()
            if d not in known
        ]
        if not new:
            return 0
        # Another leader's run may store the same line at the same moment: keep whichever came
        # first (a unique digest), without an error.
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(KnownHost).values(new).on_conflict_do_nothing(index_elements=["digest"])
        session.execute(statement)
    return len(new)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A file of our own next to the target, renamed over it: SSH never reads half a file, and the
    # mode is 0600 from its first byte.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
