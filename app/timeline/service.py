"""Record events, and read them back newest first by cursor.

Recording happens in the caller's transaction, so an event exists exactly when the change it
describes does. Ids must be handed out in commit order, or a follower that has read up to id 11
would never see an id 10 committed a moment later. SQLite has one writer at a time, so that holds
by construction. On PostgreSQL a sequence value is taken at insert, not at commit; a
transaction-scoped advisory lock taken before the insert makes event-writing transactions commit
one after another, which restores the guarantee at the cost of serialising them (as SQLite does).
"""

from __future__ import annotations

import dataclasses
import json
import operator
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app import instruments
from app.db import Database, utcnow
from app.errors import NodeNotFound
from app.timeline import pages
from app.timeline.filters import ACTOR_MAX, TimelineFilter, refuse

# Re-exported: other domains read a node name or a time (`since=7d`) in a query the timeline's way.
from app.timeline.filters import check_node_name as check_node_name
from app.timeline.filters import parse_time as parse_time
from app.timeline.models import NODE, TimelineEvent, TimelineRetention
from app.timeline.notify import notifier
from app.timeline.schemas import EventRead, TimelinePage
from app.timeline.vocabulary import ACTION_RE, REASON_RE, Result, Severity, is_audit

NOTE_MAX_BYTES = 1024
# Keyed by the schema too: advisory locks are database-wide, and two clusterm clusters in two
# schemas of one database must not order (or time out on) each other's events.
_PG_LOCK_KEY = sa.func.hashtextextended(
    sa.literal("clusterm.timeline:") + sa.func.current_schema(), 0
)
_PENDING = "timeline.pending"
_QUEUE = "timeline.queue"
_NODE_IDS = "timeline.node_ids"
_WRITTEN = "timeline.written"  # actions of the events written in this transaction, counted
_CHECKED: dict[tuple[str, str, Result, Severity], tuple[str, str, int]] = {}
_TABLE = cast(sa.Table, TimelineEvent.__table__)
_RESULTS = frozenset(Result)
_SEVERITIES = frozenset(Severity)
_LOCKED_TX = "timeline.locked_tx"
_ON_SQLITE = "timeline.on_sqlite"  # whether the locked transaction's database is SQLite
_ATTACHED = "timeline.attached"  # in the info of the sessions `attach` instrumented


def cut_note(note: str, limit: int = NOTE_MAX_BYTES) -> str:
    """Cut `note` to at most `limit` UTF-8 bytes, keeping its head and its tail.

    The head usually says what was attempted and the tail how it ended (Ansible's last lines),
    so the middle is what goes.
    """
    raw = note.encode()
    if len(raw) <= limit:
        return note
    marker = f" …[{len(raw)} bytes, middle cut]… "
    room = limit - len(marker.encode())
    head = raw[: room // 2].decode(errors="ignore")
    tail = raw[len(raw) - (room - room // 2) :].decode(errors="ignore")
    return head + marker + tail


def _check(action: str, reason: str, result: Result, severity: Severity) -> tuple[str, str, int]:
    """(result, severity) as plain strings, and whether the event is on the audit trail (1 or 0).

    A bad value here is a bug in the caller, not bad user input: fail loudly. The few
    combinations the code uses are remembered, so a burst pays for the checks once. mypy holds
    typed callers to the enums; the result and severity checks stay for an untyped one, whose
    string SQLite's fast path below would store unchecked (it bypasses the column's type).
    Plain str and int because the driver binds a subclass (an enum member, a bool) the slow way.
    """
    key = (action, reason, result, severity)
    known = _CHECKED.get(key)
    if known is not None:
        return known
    if not ACTION_RE.match(action):
        raise ValueError(f"timeline action {action!r} must match {ACTION_RE.pattern}")
    if not REASON_RE.match(reason):
        raise ValueError(f"timeline reason {reason!r} must be CamelCase ({REASON_RE.pattern})")
    if result not in _RESULTS:
        raise ValueError(f"timeline result {result!r} is not one of {', '.join(Result)}")
    if severity not in _SEVERITIES:
        raise ValueError(f"timeline severity {severity!r} is not one of {', '.join(Severity)}")
    known = (
        Result(result).value,
        Severity(severity).value,
        int(is_audit(action, reason, severity)),
    )
    if len(_CHECKED) < 10_000:  # bounded, in case a caller builds reasons from data
        _CHECKED[key] = known
    return known


def _take_order_lock(session: Session) -> bool:
    """Hold the lock that orders event writers before the event gets its time, so that
    `occurred_at` also follows the ids. On SQLite that is the write lock itself: a write session
    begins lazily, so begin it now (`BEGIN IMMEDIATE`). True when the database is SQLite."""
    info = session.info
    if _ATTACHED not in info:
        raise NotAttached(
            "record_event needs a session of a Database given to timeline.service.attach; "
            "without its listeners the event would never be written"
        )
    tx = session.get_transaction()
    if tx is not None and info.get(_LOCKED_TX) is tx:
        return bool(info[_ON_SQLITE])  # taken earlier in this transaction
    dialect = session.connection().dialect.name
    if dialect == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
    info[_LOCKED_TX] = session.get_transaction()
    info[_ON_SQLITE] = dialect == "sqlite"
    return dialect == "sqlite"


class NodeRef(Protocol):
    """What an event about a node needs from it: any node row from `app.nodes.service` (its id is
    None until the row is flushed)."""

    @property
    def id(self) -> int | None: ...
    @property
    def name(self) -> str: ...


def _link(session: Session, node: NodeRef | str | None) -> tuple[int | None, str | None]:
    """(node_id, node_name) for an event about `node`."""
    if node is None:
        return None, None
    if isinstance(node, str):
        # A burst of per-host events names the same nodes over and over: look each up once per
        # flush (the cache is dropped after every flush and at the transaction's end).
        known: dict[str, int | None] = session.info.setdefault(_NODE_IDS, {})
        if node not in known:
            with session.no_autoflush:
                known[node] = session.scalar(sa.select(NODE.c.id).where(NODE.c.name == node))
        return known[node], node
    state = sa.inspect(node)
    if state.deleted or state.was_deleted or node in session.deleted:
        return None, node.name  # the event outlives the node: name only
    if node.id is None:
        session.flush()  # a node added in this transaction: its key comes with the flush
    return node.id, node.name


class _Batch:
    """The events queued on a session until its next flush: their rows, then their ids."""

    __slots__ = ("ids", "on_sqlite", "rows")

    def __init__(self, *, on_sqlite: bool) -> None:
        self.on_sqlite = on_sqlite  # rows in the driver's terms (a tuple), or SQLAlchemy's
        self.rows: list[Any] = []
        self.ids: Sequence[int] | None = None


class RecordedEvent:
    """An event recorded in a transaction: its `id` is set once the row is written (at the
    session's next flush or at commit), and stays None if the transaction rolls back. The event
    itself is read back like any other (`list_timeline`)."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    @property
    def id(self) -> int | None:
        ids = self._batch.ids
        return None if ids is None else ids[self._index]


def record_event(
    *,
    session: Session,
    action: str,
    reason: str,
    result: Result,
    severity: Severity = Severity.INFO,
    node: NodeRef | str | None = None,
    actor: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    note: str | None = None,
    details: dict[str, Any] | None = None,
    job_id: int | None = None,
    attempt: int | None = None,
    duration_ms: int | None = None,
) -> RecordedEvent:
    """Add an event to the caller's transaction; it becomes visible when that commits.

    The row is queued on the session and written with its transaction's other events in one
    executemany, before the session's next flush or at commit (see `flush_events`): the ORM's
    per-object unit of work costs ~100 µs an event, ten times the insert itself. A job's burst of
    per-host outcomes holds the write lock meanwhile, so on SQLite the queued row is already the
    driver's, its values converted here as SQLAlchemy's types would (`_sqlite_now`, `_json`).
    """
    result_text, severity_text, audit = _check(action, reason, result, severity)
    # While a batch is queued, its transaction holds the lock (a commit or a rollback drops the
    # batch); the first event since a flush checks, as the transaction may be a new one.
    batch: _Batch | None = session.info.get(_QUEUE)
    on_sqlite = batch.on_sqlite if batch is not None else _take_order_lock(session)
    if node is None:
        node_id, node_name = None, None
    else:
        node_id, node_name = _link(session, node)
        # Linking a node added in this transaction flushes, which writes the queued batch.
        batch = session.info.get(_QUEUE)
    if batch is None:
        batch = session.info[_QUEUE] = _Batch(on_sqlite=on_sqlite)
        session.info[_PENDING] = True
    note = cut_note(note) if note else None
    actor = actor[:ACTOR_MAX] if actor else None
    event = RecordedEvent(batch, len(batch.rows))
    if batch.on_sqlite:
        stored = None if details is None else _json(details)
        batch.rows.append((_sqlite_now(), node_id, node_name, action, reason, result_text,
                           severity_text, from_state, to_state, note, stored, job_id, attempt,
                           duration_ms, actor, audit))  # fmt: skip
    else:
        batch.rows.append(
            {
                "occurred_at": utcnow(),
                "node_id": node_id,
                "node_name": node_name,
                "action": action,
                "reason": reason,
                "result": result_text,
                "severity": severity_text,
                "from_state": from_state,
                "to_state": to_state,
                "note": note,
                "details": details,
                "job_id": job_id,
                "attempt": attempt,
                "duration_ms": duration_ms,
                "actor": actor,
                "audit": bool(audit),
            }
        )
    return event


def flush_events(session: Session) -> None:
    """Write the events queued on `session` (in the order recorded) and set their ids."""
    batch: _Batch | None = session.info.pop(_QUEUE, None)
    if batch is None or not batch.rows:
        return
    rows = batch.rows
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        batch.ids = _insert_sqlite(connection, rows)
        actions = Counter(map(_ACTION_OF_ROW, rows))
    else:
        # Ids are assigned in the order the rows are inserted, under the writers' lock, so the
        # returned ids sorted match the rows in order; sorting here keeps the batched insert.
        insert = sa.insert(_TABLE).returning(_TABLE.c.id)
        batch.ids = sorted(connection.execute(insert, rows).scalars())
        actions = Counter(row["action"] for row in rows)
    # Counted when the transaction commits (`_after_commit`): a rolled back event never existed.
    session.info.setdefault(_WRITTEN, Counter()).update(actions)


def _insert_sqlite(connection: sa.Connection, rows: list[tuple[Any, ...]]) -> range:
    """The driver's executemany of rows already in its terms. Ids: AUTOINCREMENT under our write
    lock hands out consecutive ids, so the batch ends at the table's sequence value."""
    connection.exec_driver_sql(_SQLITE_INSERT, rows)
    last = connection.exec_driver_sql(
        "SELECT seq FROM sqlite_sequence WHERE name = 'timeline_event'"
    ).scalar_one()
    return range(last - len(rows) + 1, last + 1)


class _Second:
    """The last second a time was written in, and its date and time of day as text."""

    last: tuple[int, str] = (-1, "")


def _sqlite_now() -> str:
    """Now in UTC, as UTCDateTime stores it on SQLite (SQLAlchemy's DATETIME text,
    `2026-11-21 10:11:12.345678`). Only the microseconds change within a second, so the rest is
    formatted once a second: a datetime made and formatted per event costs more than its insert.
    """
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    last = _Second.last
    if last[0] != second:
        text = time.strftime("%Y-%m-%d %H:%M:%S.", time.gmtime(second))
        last = _Second.last = (second, text)
    return last[1] + str(1_000_000 + micro)[1:]  # zero-padded to 6 digits


# json.dumps's own C encoder, made once: dumps makes it again on every call, which costs more
# than encoding a small dict. The text is json.dumps(value, check_circular=False)'s, the text the
# JSON column type writes (a circular value fails with RecursionError rather than ValueError).
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_ENCODE = (
    _C_ENCODER(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )
    if _C_ENCODER is not None
    else None
)


def _json(value: Any) -> str:
    if _ENCODE is None:
        return json.dumps(value, check_circular=False)
    return "".join(_ENCODE(value, 0))


# The order of `record_event`'s row on SQLite.
_COLUMNS = (
    "occurred_at", "node_id", "node_name", "action", "reason", "result", "severity",
    "from_state", "to_state", "note", "details", "job_id", "attempt", "duration_ms", "actor",
    "audit",
)  # fmt: skip
_ACTION_OF_ROW = operator.itemgetter(_COLUMNS.index("action"))
_SQLITE_INSERT = (
    f"INSERT INTO timeline_event ({', '.join(_COLUMNS)}) "  # noqa: S608  (fixed column names)
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    # Before the ORM's own changes, so an event about a node deleted in the same flush still
    # finds the node (the delete then sets its link to NULL).
    flush_events(session)


def _after_flush(session: Session, _context: Any) -> None:
    session.info.pop(_NODE_IDS, None)


def _before_commit(session: Session) -> None:
    flush_events(session)


def _after_commit(session: Session) -> None:
    session.info.pop(_NODE_IDS, None)
    for action, count in session.info.pop(_WRITTEN, {}).items():
        instruments.TIMELINE_EVENTS.labels(action).inc(count)
    if session.info.pop(_PENDING, False):
        notifier.notify()


def _after_rollback(session: Session) -> None:
    session.info.pop(_QUEUE, None)
    session.info.pop(_WRITTEN, None)
    session.info.pop(_PENDING, None)
    session.info.pop(_NODE_IDS, None)


_LISTENERS: dict[str, Callable[..., None]] = {
    "before_flush": _before_flush,
    "after_flush": _after_flush,
    "before_commit": _before_commit,
    "after_commit": _after_commit,
    "after_rollback": _after_rollback,
}


class NotAttached(RuntimeError):
    """`record_event` on a session of a database `attach` was not called on: its events would
    never be written."""


def attach(db: Database) -> Database:
    """Give `db`'s sessions the listeners that write queued events (at flush and commit) and
    wake the followers (after commit). Every Database that records events needs it, once."""
    db.instrument_sessions(_ATTACHED, _LISTENERS)
    return db


# --- reading ---------------------------------------------------------------------------------


# Plain rows, not ORM objects: a page is read-only, and the identity map would cost more than
# the query (see docs/benchmarks.md). Pages without `after_id` are read by `app.timeline.pages`.
_ROWS = sa.select(_TABLE)


def bounds(*, session: Session) -> tuple[int | None, int | None]:
    """(oldest kept id, newest id). Two subqueries: SQLite answers a lone MIN or MAX from the
    index, but scans the table for both in one SELECT."""
    ev = TimelineEvent
    oldest = sa.select(sa.func.min(ev.id)).scalar_subquery()
    latest = sa.select(sa.func.max(ev.id)).scalar_subquery()
    row = session.execute(sa.select(oldest, latest)).one()
    return row[0], row[1]


def purged_through(*, session: Session) -> int:
    """The highest id retention has deleted: a cursor below it may have missed events."""
    value = session.scalar(sa.select(TimelineRetention.purged_through_id))
    return int(value or 0)


def events_after(
    *, session: Session, after_id: int, filters: TimelineFilter, limit: int
) -> list[sa.Row[Any]]:
    """The next `limit` matching events after `after_id`, oldest first (what a follower needs)."""
    ev = TimelineEvent
    query = _ROWS.where(ev.id > after_id, *filters.where()).order_by(ev.id).limit(limit)
    return list(session.execute(query))


def list_timeline(
    *,
    session: Session,
    filters: TimelineFilter,
    limit: int,
    before_id: int | None = None,
    after_id: int | None = None,
) -> TimelinePage:
    """One page, newest first. With `after_id`, the `limit` events right after it (so a poller
    can catch up page by page), still listed newest first."""
    if before_id is not None and after_id is not None:
        raise refuse("after_id", "give before_id or after_id, not both")
    if after_id is None:
        return pages.read_page(
            connection=session.connection(), filters=filters, limit=limit, before_id=before_id
        ).schema()
    ev = TimelineEvent
    rows = events_after(session=session, after_id=after_id, filters=filters, limit=limit)
    rows.reverse()
    older = rows and session.scalar(
        sa.select(ev.id)
        .where(ev.id < rows[-1].id, *filters.where())
        .order_by(ev.id.desc())
        .limit(1)
    )
    oldest_id, latest_id = bounds(session=session)
    return TimelinePage(
        items=[EventRead.of(row) for row in rows],
        next_before_id=rows[-1].id if rows and older else None,
        next_after_id=rows[0].id if rows else after_id,
        oldest_id=oldest_id,
        latest_id=latest_id,
    )


def node_history(
    *,
    session: Session,
    name: str,
    filters: TimelineFilter,
    limit: int,
    before_id: int | None = None,
    after_id: int | None = None,
) -> TimelinePage:
    """A node's events; still there after the node is deleted. 404 only for a name that has
    neither a node nor any event (most likely a typo)."""
    check_node_name("name", name)
    ev = TimelineEvent
    known = session.scalar(sa.select(NODE.c.id).where(NODE.c.name == name)) is not None
    if not known:
        known = session.scalar(sa.select(ev.id).where(ev.node_name == name).limit(1)) is not None
    if not known:
        raise NodeNotFound(name)
    scoped = dataclasses.replace(filters, nodes=[name])
    return list_timeline(
        session=session, filters=scoped, limit=limit, before_id=before_id, after_id=after_id
    )
