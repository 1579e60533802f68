"""Wake-ups across replicas: "a job was queued", "a revert is due sooner", "a drift check is asked".

A signal only says "look again": what to do is always read from the database, so a signal lost (a
listener reconnecting, a replica starting) costs a delay, never a wrong result, and every
consumer also polls on a slow timer. On PostgreSQL a signal is a NOTIFY on a channel named for
this database and schema (two clusters on one server never hear each other), heard by a LISTEN on
a dedicated connection in a thread. On SQLite there is one process, and a signal is a call.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.db import Database

log = logging.getLogger("clusterm.cluster")

JOBS = "jobs"  # a job was queued, or a cancel asked for
REVERTS = "reverts"  # a verbosity revert was scheduled
DRIFT = "drift"  # a drift check was asked for
OWN_VERBOSITY = "own-verbosity"  # clusterm's own level, for every replica (payload: JSON)
LEAD = "lead"  # the lead was let go: followers try to take it now
CHANNELS = (JOBS, REVERTS, DRIFT, OWN_VERBOSITY, LEAD)

RECONNECT_S = 1.0
WAIT_S = 1.0  # how often the listener looks up from its wait, to notice a stop

Callback = Callable[[str], None]


class Signals:
    """Publish and subscribe; local subscribers are called in the publishing thread, remote
    ones (PostgreSQL) in the listener's."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)
        self._lock = threading.Lock()
        self._remote = db.engine.dialect.name == "postgresql"
        self._prefix = ""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()

    def subscribe(self, channel: str, callback: Callback) -> None:
        with self._lock:
            self._callbacks[channel].append(callback)

    def publish(self, channel: str, payload: str = "", *, session: Session | None = None) -> None:
        """Tell every replica. With `session`, remote replicas hear it when that transaction
        commits (so nobody looks before the row is there); local subscribers hear it now, and
        look again on their timer if they looked too early."""
        if self._remote:
            statement = sa.select(sa.func.pg_notify(self._channel(channel), payload))
            if session is not None:
                session.execute(statement)
            else:
                with self.db.write() as own:
                    own.execute(statement)
                # Our own listener hears it too: local subscribers are called from there.
                return
        self._deliver(channel, payload)

    # --- the listener (PostgreSQL) --------------------------------------------------------------

    def start(self) -> None:
        if not self._remote or self._thread is not None:
            return
        self._prefix = self._namespace()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._listen, name="signals", daemon=True)
        self._thread.start()
        # A replica that starts must not miss what is published right after: wait (briefly)
        # until it listens.
        self._listening.wait(5.0)

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(WAIT_S * 3)

    def _namespace(self) -> str:
        with self.db.read() as session:
            database, schema = session.execute(
                sa.text("SELECT current_database(), current_schema()")
            ).one()
        digest = hashlib.sha256(f"{database}/{schema}".encode()).hexdigest()[:12]
        return f"clusterm_{digest}_"

    def _channel(self, channel: str) -> str:
        return (self._prefix or self._namespace()) + channel.replace("-", "_")

    def _listen(self) -> None:
        import psycopg

        # Connected as SQLAlchemy connects (its own translation of the URL, so a password with
        # spaces or quotes works), never through a connection string built here.
        args, params = self.db.engine.dialect.create_connect_args(self.db.engine.url)
        params = {**params, "autocommit": True, "connect_timeout": 5}
        names = {self._channel(c): c for c in CHANNELS}
        first = True
        while not self._stopping.is_set():
            try:
                with psycopg.connect(*args, **params) as conn:
                    for name in names:
                        conn.execute(f'LISTEN "{name}"')  # names are ours: [a-z0-9_]
                    self._listening.set()
                    if not first:
                        self._deliver_all("")  # anything may have been missed meanwhile
                    first = False
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=WAIT_S, stop_after=64):
                            channel = names.get(note.channel)
                            if channel is not None:
                                self._deliver(channel, note.payload)
            except Exception as exc:
                if self._stopping.is_set():
                    return
                # The type only: a driver's message may quote the connection's parameters.
                log.warning(
                    "lost the signal listener's connection (%s); reconnecting",
                    type(exc).__name__,
                )
                self._stopping.wait(RECONNECT_S)

    def _deliver(self, channel: str, payload: str) -> None:
        with self._lock:
            callbacks = list(self._callbacks.get(channel, ()))
        for callback in callbacks:
            try:
                callback(payload)
            except Exception:
                log.exception("a %s signal's subscriber failed", channel)

    def _deliver_all(self, payload: str) -> None:
        for channel in CHANNELS:
            self._deliver(channel, payload)
