"""The inventory as `GET /info/nodes` answers it in JSON, at thousands of nodes.

Each node's part of the answer is a pure function of its row as the driver returns it and of
whether the reader sees var values. So the row is read raw (no type conversion) and its JSON
is kept, keyed by those exact values: a later listing converts and serialises only the nodes
whose row changed, and joins the rest as they were. The key is the content itself, so nothing
needs invalidating (another replica's write simply gives a new key) and no entry can go stale.
Converting and serialising every node each time cost several times the query at 5,000 nodes.

A miss converts the row with each column type's own result processor (what a typed query would
run) and serialises it with `pydantic_core.to_json`, which writes what FastAPI writes for a
NodeRead (tests/nodes/test_bulk.py holds them to the same bytes).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, cast

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy.orm import Session

from app.nodes.models import Node
from app.nodes.schemas import NodeRead

# Entries kept: a fragment and its key take about 1 KB, so at most some 20 MB, for two readings
# (with and without var values) of 10,000 nodes. Past it the memo starts over.
MEMO_MAX = 20_000

FIELDS = tuple(NodeRead.model_fields)
_TABLE = cast(sa.Table, Node.__table__)
_JSON_FIELDS = frozenset({"labels", "vars"})


def _raw(field: str) -> sa.ColumnElement[Any]:
    column = _TABLE.c[field]
    if field in _JSON_FIELDS:
        # As text on every backend (psycopg would decode JSONB into an unhashable dict).
        return sa.cast(column, sa.Text)
    return sa.type_coerce(column, sa.types.NullType())


RAW_COLUMNS = tuple(_raw(field) for field in FIELDS)

Converter = Callable[[Any], Any]


def converters(dialect: sa.Dialect) -> list[Converter | None]:
    """Per field, what turns the driver's value into the typed one (None: it already is)."""
    out: list[Converter | None] = []
    for field in FIELDS:
        if field in _JSON_FIELDS:
            # How SQLAlchemy's JSON type reads SQLite's text and psycopg reads JSONB.
            out.append(json.loads)
        else:
            column_type = _TABLE.c[field].type.dialect_impl(dialect)
            out.append(column_type.result_processor(dialect, None))
    return out


class Memo:
    """Each node's JSON, by its raw row and the reader's view of its vars."""

    def __init__(self, max_entries: int = MEMO_MAX) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], bytes] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def listing(
        self,
        *,
        session: Session,
        query: sa.Select[Any],
        sees_values: bool,
        as_read: Callable[[dict[str, Any], bool], dict[str, Any]],
    ) -> bytes:
        """The JSON array of the nodes `query` (over RAW_COLUMNS) selects, in its order."""
        convert: list[Converter | None] | None = None
        entries = self._entries
        parts = []
        missed: dict[tuple[Any, ...], bytes] = {}
        for row in session.execute(query):
            key = (sees_values, *row)
            part = entries.get(key)
            if part is None:
                if convert is None:
                    convert = converters(session.get_bind().dialect)
                node = {
                    field: value if fn is None or value is None else fn(value)
                    for field, fn, value in zip(FIELDS, convert, row, strict=True)
                }
                part = missed[key] = to_json(as_read(node, sees_values))
            parts.append(part)
        if missed and len(missed) <= self.max_entries:  # a larger listing is not kept at all
            with self._lock:
                if len(entries) + len(missed) > self.max_entries:
                    entries.clear()
                entries.update(missed)
        return b"[" + b",".join(parts) + b"]"


memo = Memo()
