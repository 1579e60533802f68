"""A page of the timeline, newest first, read for the cost of the query and little more.

`GET /info/timeline` is the most frequent read there is (the console and `clusterctl timeline`
poll it), and the query itself is answered from an index in about 0.1 ms at any depth. Through
the ORM session, SQLAlchemy's statement caching, its result processing and the response model it
cost ten times that. So a page is read here the short way, with the same SQL and the same values:

- The statement is built and compiled once per shape (which filters, how many values each, a
  cursor or not; see `TimelineFilter.params`) and dialect, and kept: a request then only binds
  its values, through the bind processors SQLAlchemy would apply.
- On SQLite it runs on the pooled driver connection itself: one statement needs no transaction
  around it (the page and its bounds are one SELECT, so one snapshot). On other databases, and
  whenever SQLAlchemy's statement log is on, it runs through `exec_driver_sql`, so that errors,
  pool invalidation and the log are SQLAlchemy's own.
- Rows become plain dicts in `EventRead`'s field order, converted as SQLAlchemy's types would
  (the same result processors; on SQLite the same steps, written out), and a page is serialised
  by pydantic-core's own serializer: the bytes FastAPI sends for a `TimelinePage`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from app.db import Database, DatabaseClosed
from app.timeline.filters import TimelineFilter
from app.timeline.models import TimelineEvent
from app.timeline.schemas import EventRead, TimelinePage
from app.timeline.vocabulary import Result, Severity

_TABLE = cast(sa.Table, TimelineEvent.__table__)
# The columns in EventRead's order (`node` is the stored node_name), then the bounds.
FIELDS = tuple(EventRead.model_fields)
_COLUMNS = [_TABLE.c.node_name if field == "node" else _TABLE.c[field] for field in FIELDS]
_BOUNDS = [
    sa.select(sa.func.min(_TABLE.c.id)).scalar_subquery().label("bound_oldest"),
    sa.select(sa.func.max(_TABLE.c.id)).scalar_subquery().label("bound_latest"),
]
_SQL_LOG = logging.getLogger("sqlalchemy.engine.Engine")
_MAX_SHAPES = 512  # bounded: a shape is a combination of filters, and clients choose them


@dataclass(frozen=True)
class Page:
    """One page: each event a dict of `EventRead`'s fields, newest first, and the cursors."""

    items: list[dict[str, Any]]
    next_before_id: int | None
    next_after_id: int | None
    oldest_id: int | None
    latest_id: int | None

    def json(self) -> bytes:
        """The page as FastAPI would send it for a `TimelinePage` (tests/timeline/test_pages.py
        compares the two): same serializer, same field order, NaN and infinities as null."""
        return pydantic_core.to_json(
            {
                "items": self.items,
                "next_before_id": self.next_before_id,
                "next_after_id": self.next_after_id,
                "oldest_id": self.oldest_id,
                "latest_id": self.latest_id,
            },
            inf_nan_mode="null",
        )

    def schema(self) -> TimelinePage:
        """The page as the typed model (for the text format and the support bundle)."""
        return TimelinePage.model_construct(
            items=[_typed(item) for item in self.items],
            next_before_id=self.next_before_id,
            next_after_id=self.next_after_id,
            oldest_id=self.oldest_id,
            latest_id=self.latest_id,
        )


def _typed(item: dict[str, Any]) -> EventRead:
    # The values an item holds as their JSON shows them, back to their types (see below).
    when = item["occurred_at"]
    return EventRead.model_construct(
        **{
            **item,
            "occurred_at": dt.datetime.fromisoformat(when) if isinstance(when, str) else when,
            "result": Result(item["result"]),
            "severity": Severity(item["severity"]),
        }
    )


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # the parameters' order, for a positional paramstyle
    binds: dict[str, Callable[[Any], Any] | None]  # bind processor by parameter name
    fixed: dict[str, Any]  # parameters of the statement's own (SQLite's OFFSET 0)


_compiled: dict[tuple[str, tuple[str, ...], bool], _Compiled] = {}
_compiled_lock = threading.Lock()


def _compile(
    dialect: Dialect, filters: TimelineFilter, names: Sequence[str], before: bool
) -> _Compiled:
    key = (dialect.name, tuple(names), before)
    found = _compiled.get(key)
    if found is not None:
        return found
    query = sa.select(*_COLUMNS, *_BOUNDS).where(*filters.where())
    if before:
        query = query.where(_TABLE.c.id < sa.bindparam("before_id", None, type_=sa.BigInteger()))
    query = query.order_by(_TABLE.c.id.desc()).limit(
        sa.bindparam("limit", None, type_=sa.Integer())
    )
    compiled = query.compile(dialect=dialect)
    ours = {*names, "before_id", "limit"}
    defaults = compiled.construct_params()
    made = _Compiled(
        sql=compiled.string,
        positional=tuple(compiled.positiontup) if compiled.positiontup is not None else None,
        binds={
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        },
        fixed={name: value for name, value in defaults.items() if name not in ours},
    )
    with _compiled_lock:
        if len(_compiled) >= _MAX_SHAPES:
            _compiled.clear()
        _compiled[key] = made
    return made


def _bound(compiled: _Compiled, values: dict[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
    processed = {}
    for name, value in (*values.items(), *compiled.fixed.items()):
        process = compiled.binds.get(name)
        processed[name] = process(value) if process is not None and value is not None else value
    if compiled.positional is None:
        return processed
    return tuple(processed[name] for name in compiled.positional)


# --- turning driver values into JSON values ---------------------------------------------------
#
# An item holds what its JSON shows: the values SQLAlchemy's types would return, except that a
# result or severity is its member's value, and on SQLite a time is already its JSON text. The
# serializer writes them as it writes the typed model; a member or a datetime would cost it
# several times more. `Page.schema` turns them back into the typed values.

Convert = Callable[[Any], Any]

# How SQLAlchemy stores a DATETIME in SQLite (microseconds always; without them when written by
# other means), in UTC as UTCDateTime keeps it.
_SQLITE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d{6})?")


def _time_from_text(value: str | None) -> str | dt.datetime | None:
    """The JSON text of a stored time, as pydantic writes a UTC datetime: ISO 8601 with a `T`,
    microseconds unless they are 0, and `Z`."""
    if value is None:
        return None
    stored = _SQLITE_TIME.fullmatch(value)
    if stored is None:
        # Any other form: read as SQLAlchemy does (`fromisoformat`), then as UTCDateTime does.
        moment = dt.datetime.fromisoformat(value)
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    day, clock, fraction = stored.groups()
    if fraction == ".000000":
        fraction = None
    return f"{day}T{clock}{fraction or ''}Z"


def _json_from_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        # The same values as json.loads (the JSON type's reader), a good deal faster.
        return pydantic_core.from_json(value)
    except ValueError:
        # What pydantic-core refuses (a lone surrogate escape), json.loads reads: let it.
        return json.loads(value)


def _value_of(vocabulary: type[Result] | type[Severity]) -> Convert:
    values = frozenset(member.value for member in vocabulary)

    def convert(value: str | None) -> str | None:
        if value is None or value in values:
            return value
        # As the enum column's reader fails on a value outside the vocabulary.
        raise LookupError(
            f"'{value}' is not among the defined enum values. Enum name: "
            f"{vocabulary.__name__.lower()}. Possible values: {', '.join(sorted(values))}"
        )

    return convert


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


_VALUES: dict[str, Convert] = {"result": _value_of(Result), "severity": _value_of(Severity)}
_SQLITE: dict[str, Convert] = {
    "occurred_at": _time_from_text,
    "details": _json_from_text,
    "audit": _flag,
}
_converters: dict[str, list[tuple[int, Convert]]] = {}


def _converters_for(dialect: Dialect) -> list[tuple[int, Convert]]:
    """(index, converter) of each column whose driver value is not already its JSON value."""
    found = _converters.get(dialect.name)
    if found is None:
        found = []
        for i, (field, column) in enumerate(zip(FIELDS, _COLUMNS, strict=True)):
            convert = _VALUES.get(field)
            if convert is None and dialect.name == "sqlite":
                convert = _SQLITE.get(field)
            elif convert is None:
                convert = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if convert is not None:
                found.append((i, convert))
        _converters[dialect.name] = found
    return found


def _items(rows: Sequence[Sequence[Any]], dialect: Dialect) -> list[dict[str, Any]]:
    converters = _converters_for(dialect)
    width = len(FIELDS)
    items = []
    for row in rows:
        values = list(row[:width])
        for i, convert in converters:
            values[i] = convert(values[i])
        items.append(dict(zip(FIELDS, values, strict=True)))
    return items


# --- reading ----------------------------------------------------------------------------------


def read_page(
    *,
    connection: sa.Connection,
    filters: TimelineFilter,
    limit: int,
    before_id: int | None = None,
) -> Page:
    """The newest `limit` matching events (older than `before_id` if given), and the cursors."""
    dialect = connection.dialect
    names = filters.params()
    compiled = _compile(dialect, filters, list(names), before_id is not None)
    values = {**names, "limit": limit + 1}  # one more: is there an older page?
    if before_id is not None:
        values["before_id"] = before_id
    params = _bound(compiled, values)
    rows = _run(connection, compiled.sql, params)
    if rows:
        oldest_id, latest_id = rows[0][-2], rows[0][-1]
    elif connection.in_transaction():
        oldest_id, latest_id = _run(connection, _bounds_sql(dialect), ())[0]
    else:
        # Nothing matched, so the bounds take a statement of their own, and it must see what the
        # page saw: an event committed in between would be past `next_after_id` yet unseen.
        with connection.begin():
            rows = _run(connection, compiled.sql, params)
            oldest_id, latest_id = _run(connection, _bounds_sql(dialect), ())[0]
    has_older = len(rows) > limit
    rows = rows[:limit]
    items = _items(rows, dialect)
    if items:
        next_after_id: int | None = items[0]["id"]
    else:
        next_after_id = latest_id if before_id is None else None
    return Page(
        items=items,
        next_before_id=items[-1]["id"] if items and has_older else None,
        next_after_id=next_after_id,
        oldest_id=oldest_id,
        latest_id=latest_id,
    )


_bounds: dict[str, str] = {}


def _bounds_sql(dialect: Dialect) -> str:
    found = _bounds.get(dialect.name)
    if found is None:
        found = _bounds[dialect.name] = str(sa.select(*_BOUNDS).compile(dialect=dialect))
    return found


def _run(connection: sa.Connection, sql: str, params: Any) -> list[Any]:
    if connection.dialect.name != "sqlite" or _SQL_LOG.isEnabledFor(logging.INFO):
        return list(connection.exec_driver_sql(sql, params).all())
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    try:
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()
    except connection.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy would raise it (a locked database is an OperationalError: a 503).
        raise sa.exc.DBAPIError.instance(
            sql,
            params,
            exc,
            connection.dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=connection.dialect,
        ) from exc


def connect(db: Database) -> sa.Connection:
    """A connection for `read_page`; no transaction until a statement runs through it."""
    if db.disposed:
        raise DatabaseClosed("the database was used after clusterm closed it")
    return db.engine.connect()
