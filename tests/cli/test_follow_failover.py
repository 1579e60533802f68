"""`clusterctl --url A --url B timeline --follow` goes on at B when A stops, from the last event
it printed (Last-Event-ID): nothing lost, nothing printed twice.

Two real daemons in this process, each on its own SQLite file holding the same events under the
same ids, stand for two replicas of one database: the stream's cursor is the event id, which is
what replicas share."""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import sqlalchemy as sa

from app.auth.models import Token
from app.auth.vocabulary import Role
from app.config import Settings, load_settings
from app.db import Database
from app.timeline import service as timeline
from app.timeline.models import TimelineEvent
from tests.timeline.conftest import serve, write_events

CLUSTERCTL = str(Path(sys.executable).parent / "clusterctl")


def replica(tmp_path: Path, name: str) -> Settings:
    return load_settings(
        data_dir=tmp_path / name,
        database_url=f"sqlite:///{tmp_path / name}.db",
        timeline_stream_ping_s=0.3,
        timeline_stream_poll_s=0.2,
    )


def latest_id(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(sa.select(sa.func.max(TimelineEvent.id))) or 0)


def test_timeline_follow_resumes_on_the_next_replica(tmp_path: Path) -> None:
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    with ExitStack() as stack:
        stop_a = stack.enter_context(ExitStack())
        url_a = stop_a.enter_context(serve(a))
        url_b = stack.enter_context(serve(b))
        db_a = timeline.attach(Database(a.effective_database_url))
        db_b = timeline.attach(Database(b.effective_database_url))
        stack.callback(db_a.dispose)
        stack.callback(db_b.dispose)
        # The same token on both, as replicas share their tokens through the database.
        token = a.admin_token_file.read_text().strip()
        with db_b.write() as session:
            digest = hashlib.sha256(token.encode()).hexdigest()
            session.add(Token(name="admin-a", role=Role.ADMIN, token_hash=digest))
        # The same events under the same ids on both.
        head = max(latest_id(db_a), latest_id(db_b))
        for db in (db_a, db_b):
            if head > latest_id(db):
                write_events(db, head - latest_id(db), node="filler")
            write_events(db, 1, node="n0", reason="Before")
        assert latest_id(db_a) == latest_id(db_b)

        proc = subprocess.Popen(
            [CLUSTERCTL, "--url", url_a, "--url", url_b, "--token", token, "timeline", "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                k: v for k, v in os.environ.items() if k not in ("CLUSTERM_TOKEN", "CLUSTERM_URL")
            },
        )
        assert proc.stdout is not None
        stdout = proc.stdout
        lines: queue.Queue[str] = queue.Queue()
        printed: list[str] = []

        def read() -> None:
            for line in stdout:
                printed.append(line)
                lines.put(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def next_line_with(text: str) -> str:
            while True:
                line = lines.get(timeout=30)
                if text in line:
                    return line

        try:
            next_line_with(" n0 ")  # the page, from A
            # Committed while A goes away: only a resume from the last id printed finds it.
            write_events(db_b, 1, node="n1", reason="WhileSwitching")
            stop_a.close()  # A stops; its stream ends
            next_line_with(" n1 ")
            write_events(db_b, 1, node="n2", reason="AfterSwitching")
            next_line_with(" n2 ")
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(20)
            reader.join(5)
            stdout.close()
            err = proc.stderr.read() if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()
    assert code == 0, err
    nodes = [line.split()[1] for line in printed[1:] if line.split()[1] != "filler"]
    assert nodes[-3:] == ["n0", "n1", "n2"]
    assert nodes.count("n0") == 1, printed  # not printed again by B
