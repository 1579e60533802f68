"""A job's log in the database: written in batches by the leader, served by every replica.

The stored log has the log buffer's shape (app.ansible.logbuffer): `job_log` says where it stands
(the next line's number, how many head lines once the head is sealed, where the tail starts, the
bytes dropped, whether it is complete) and `job_log_chunk` holds runs of consecutive lines. A run
never spans the gap, so a chunk whose lines all fell out of the tail is deleted whole.

Writing (`LogWriter`, the leader's job): each batch is one fenced transaction holding the lines not
stored yet and the new shape; the job's last batch shares its transaction with the job's end, so
a reader never sees the job finished with lines still to come. Lines the tail dropped before a
batch stored them are simply never stored: the gap covers them.

Reading (`LogCache`, every replica, the leader too): a job's log is rebuilt once into a buffer and
then brought up to date with the chunks past what it holds. A finished job's copy is final: it
never needs the database again. Rows, shape and chunks are read in one snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.ansible.logbuffer import LogBuffer, Pending
from app.cluster.leadership import Leadership
from app.db import Database, utcnow
from app.jobs import results
from app.jobs.models import Job, JobLog, JobLogChunk
from app.jobs.vocabulary import ACTIVE_STATUSES

log = logging.getLogger("clusterm.jobs")

T = TypeVar("T")
CHUNK_BYTES = 64 * 1024  # a chunk's text at most (but one line), so a read fetches little extra
CACHED_JOBS = 4  # the active job, the last, and a few more a client may ask for by id


def snapshot(session: Session) -> None:
    """Make the session's reads one snapshot (first thing in it): PostgreSQL's READ COMMITTED
    would let the log's shape and its chunks come from two different batches. SQLite's read
    transaction is one snapshot already."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


# --- writing -------------------------------------------------------------------------------------


def create_log(*, session: Session, job_id: int) -> None:
    session.add(
        JobLog(
            job_id=job_id,
            next_line=1,
            head_lines=None,
            tail_first=1,
            dropped_bytes=0,
            complete=False,
            updated_at=utcnow(),
        )
    )


def store_pending(*, session: Session, job_id: int, pending: Pending) -> None:
    """Write a batch: its runs as chunks, the new shape, and drop chunks the tail let go of."""
    chunks = [
        {"job_id": job_id, "first_line": first, "last_line": first + len(part) - 1, "text": text}
        for start, lines in pending.runs
        for first, part, text in _split(start, lines)
    ]
    if chunks:
        session.execute(sa.insert(JobLogChunk), chunks)
    session.execute(
        sa.update(JobLog)
        .where(JobLog.job_id == job_id)
        .values(
            next_line=pending.next_line,
            head_lines=pending.head_lines,
            tail_first=pending.tail_first,
            dropped_bytes=pending.dropped_bytes,
            complete=pending.complete,
            updated_at=utcnow(),
        )
    )
    if pending.head_lines is not None:
        session.execute(
            sa.delete(JobLogChunk).where(
                JobLogChunk.job_id == job_id,
                JobLogChunk.first_line > pending.head_lines,
                JobLogChunk.last_line < pending.tail_first,
            )
        )


def _split(first: int, lines: list[str]) -> list[tuple[int, list[str], str]]:
    out: list[tuple[int, list[str], str]] = []
    begin, size = 0, 0
    for index, line in enumerate(lines):
        size += len(line) + 1
        if size >= CHUNK_BYTES or index == len(lines) - 1:
            part = lines[begin : index + 1]
            text = "\n".join(part)
            # PostgreSQL's text holds no NUL; a terminal would show one as nothing either.
            out.append((first + begin, part, text.replace("\x00", "\ufffd")))
            begin, size = index + 1, 0
    return out


def close_stored(*, session: Session, job_id: int, lines: list[str]) -> None:
    """End a stored log whose writer is gone: `lines` after what reached the database."""
    state = session.get(JobLog, job_id)
    if state is None:
        create_log(session=session, job_id=job_id)
        session.flush()
        state = session.get(JobLog, job_id)
        assert state is not None
    if state.complete:
        return
    shape = Pending(
        runs=[(state.next_line, lines)],
        next_line=state.next_line + len(lines),
        head_lines=state.head_lines,
        tail_first=state.tail_first,
        dropped_bytes=state.dropped_bytes,
        complete=True,
    )
    store_pending(session=session, job_id=job_id, pending=shape)


def has_log(*, session: Session, job_id: int) -> bool:
    return session.get(JobLog, job_id) is not None


def drop_old_logs(*, session: Session, kept: int) -> None:
    """Delete the stored logs and per-host results of every job but the newest `kept` (their
    rows stay: a job older than the stored logs says its log is no longer kept)."""
    oldest_kept = session.scalar(
        sa.select(Job.id).order_by(Job.id.desc()).offset(kept - 1).limit(1)
    )
    if oldest_kept is None:
        return
    session.execute(sa.delete(JobLogChunk).where(JobLogChunk.job_id < oldest_kept))
    results.drop_old(session=session, oldest_kept=oldest_kept)  # the per-host results go too
    session.execute(sa.delete(JobLog).where(JobLog.job_id < oldest_kept))


class LogWriter:
    """The leader's writer of one job's log: what of the buffer is stored, and the batches that
    store the rest. One batch at a time (the flusher's and the job's last one never overlap)."""

    def __init__(
        self, *, db: Database, leadership: Leadership, job_id: int, buffer: LogBuffer
    ) -> None:
        self.db, self.leadership, self.job_id, self.buffer = db, leadership, job_id, buffer
        self._stored = 1  # every line below this one is stored, or was dropped before it was
        self._lock = threading.Lock()

    def flush(self, then: Callable[[Session], T]) -> T:
        """One fenced transaction: the lines not stored yet, the log's shape, then `then` (the
        job's end, or a look at its row). LeadLost, and nothing written, when the lead is gone."""
        with self._lock:
            with self.db.write() as session:
                self.leadership.fence(session)
                pending = self.buffer.pending(self._stored)
                store_pending(session=session, job_id=self.job_id, pending=pending)
                result = then(session)
            self._stored = pending.next_line
            return result


# --- reading -------------------------------------------------------------------------------------


@dataclass
class StoredJob:
    """A job as a replica serves it: its row and its log, as of the last look at the database."""

    row: Job
    log: LogBuffer
    # Whole-log response bodies of a finished job, by (format, color): immutable, so built once.
    bodies: dict[tuple[str, bool], bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refreshed_at: float = 0.0  # time.monotonic() of the last look at the database

    @property
    def final(self) -> bool:
        return self.row.status not in ACTIVE_STATUSES and self.log.complete


class LogCache:
    """The jobs this replica serves, most recently used last."""

    def __init__(self, *, cap_bytes: int, size: int = CACHED_JOBS) -> None:
        self.cap_bytes = cap_bytes
        self.size = size
        self._jobs: OrderedDict[int, StoredJob] = OrderedDict()
        self._lock = threading.Lock()

    def remember_body(self, entry: StoredJob, key: tuple[str, bool], body: bytes) -> None:
        """Keep a finished job's whole-log body for the next reader, for one job at a time:
        the job most asked for whole is the last one, and bodies of other jobs would hold up to
        four copies of a capped log each, outside the cap."""
        with self._lock:
            for other in self._jobs.values():
                if other is not entry:
                    other.bodies.clear()
            entry.bodies[key] = body

    def peek(self, job_id: int, *, max_age_s: float) -> StoredJob | None:
        """The cached job if it is final or was brought up to date within `max_age_s`: the
        followers of one job share one look at the database (never blocks on it)."""
        with self._lock:
            entry = self._jobs.get(job_id)
        if entry is None:
            return None
        fresh = entry.final or time.monotonic() - entry.refreshed_at < max_age_s
        return entry if fresh else None

    def get(self, *, session: Session, row: Job) -> StoredJob:
        """The job of `row` (read in `session`, a snapshot), its log brought up to date."""
        with self._lock:
            entry = self._jobs.get(row.id)
            if entry is None:
                entry = StoredJob(row=row, log=LogBuffer(cap_bytes=self.cap_bytes))
                self._jobs[row.id] = entry
            self._jobs.move_to_end(row.id)
            while len(self._jobs) > self.size:
                self._jobs.popitem(last=False)
        if entry.final:
            return entry
        with entry.lock:
            if not entry.final:
                self._refresh(session, entry, row)
        return entry

    def _refresh(self, session: Session, entry: StoredJob, row: Job) -> None:
        state = session.get(JobLog, row.id)
        if state is None:
            if row.status not in ACTIVE_STATUSES:
                # A job older than the stored logs, or one that ended before it ran.
                buffer = LogBuffer(cap_bytes=self.cap_bytes)
                buffer.close(["[clusterm: this job's log is no longer kept]"], counted=False)
                entry.log = buffer
        else:
            if state.next_line < entry.log.next_line or (entry.log.complete and not state.complete):
                # A snapshot older than what this copy holds (another request refreshed it
                # meanwhile): lines only ever grow, so keep the newer copy as it is.
                return
            shape = Pending(
                runs=[],
                next_line=state.next_line,
                head_lines=state.head_lines,
                tail_first=state.tail_first,
                dropped_bytes=state.dropped_bytes,
                complete=state.complete,
            )
            held = entry.log.next_line
            # Nothing new (the common poll of a quiet job): the shape alone, no chunk query.
            runs = _runs(session, row.id, held) if state.next_line > held else []
            if not entry.log.extend_stored(runs, shape):
                # Lines this copy lacks left the tail meanwhile: start again from the head.
                rebuilt = LogBuffer(cap_bytes=self.cap_bytes)
                if not rebuilt.extend_stored(_runs(session, row.id, 1), shape):
                    log.warning("the stored log of job %s lacks lines it should hold", row.id)
                entry.log = rebuilt
        # The row after the log: whoever sees the job finished finds its log complete.
        entry.row = row
        entry.refreshed_at = time.monotonic()


def _runs(session: Session, job_id: int, after: int) -> list[tuple[int, list[str]]]:
    query = (
        sa.select(JobLogChunk.first_line, JobLogChunk.text)
        .where(JobLogChunk.job_id == job_id, JobLogChunk.last_line >= after)
        .order_by(JobLogChunk.first_line)
    )
    return [(first, text.split("\n")) for first, text in session.execute(query)]
