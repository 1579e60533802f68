"""Plain-text answers for people: aligned tables like clusterctl's, and the format choice.

A route that offers text takes `format=json|text` (the query wins) or reads `Accept: text/plain`,
and renders its rows with `render_table`: the same columns, the same "-" for an empty cell, the
same two spaces between columns as `clusterctl ... get`, so what a support engineer pastes from
curl reads like what they pasted from the CLI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

GAP = "  "  # between columns, as clusterctl's tables
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"
# For a route's `responses=`: the OpenAPI description then lists the text answer beside the JSON.
TEXT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}}
}


def wants_text(format: str | None, accept: str | None) -> bool:
    """`format` wins when given; else the first media type of `Accept` decides."""
    if format is not None:
        return format == "text"
    first = (accept or "").split(",")[0].split(";")[0].strip().lower()
    return first == "text/plain"


def cell(value: object) -> str:
    """One line, whatever the value: a table row must stay one row to be read and grepped."""
    if value is None or value == "":
        return "-"
    if type(value) is str and value.isprintable():
        # Most cells: one printable line, which the general path below would only strip. Every
        # line separator splitlines() knows is unprintable, so such a value never gets here.
        return value.strip() or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        # To the second, in UTC, as clusterctl prints times.
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Mapping):
        text = ",".join(f"{k}={v}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    elif isinstance(value, set | frozenset):
        text = ",".join(sorted(str(v) for v in value))
    elif isinstance(value, list | tuple):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    # splitlines() also breaks on \r, \v, \f and the Unicode separators. Other control
    # characters become spaces: a tab would skew the columns, and an escape sequence in a stored
    # value must not drive the terminal of whoever curls the table.
    text = " ".join(part.strip() for part in text.splitlines())
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text or "-"


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Aligned columns, no borders, a header row, a trailing newline, no trailing spaces."""
    body = [[cell(value) for value in row] for row in rows]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells for {len(headers)} columns")
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        GAP.join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *body]
    ]
    return "\n".join(lines) + "\n"
