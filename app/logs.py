"""The daemon's own logging: stderr, one line per record, as text or JSON.

No stored value reaches a log line through an error: SQLAlchemy leaves bound parameters out of its
errors (app/db.py), and the lines in which PostgreSQL quotes the data of a failed statement
(`DETAIL: Failing row contains (...)`, `Key (...)=(...)`, `CONTEXT: JSON data ...`) are hidden from
every traceback, since a row may hold a node's vars.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import re
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})))
_QUOTES_DATA = re.compile(r"^(\s*)(DETAIL|CONTEXT):.*$", re.MULTILINE)


def hide_quoted_data(text: str) -> str:
    return _QUOTES_DATA.sub(r"\1\2: (hidden: it may quote stored values)", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": hide_quoted_data(record.getMessage()),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            out["exc"] = hide_quoted_data(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        # One line per record: a traceback's newlines are escaped, not printed raw.
        return hide_quoted_data(super().format(record)).replace("\n", "\\n")


def configure_logging(*, fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


# --- the recent log, in memory -------------------------------------------------------------------


@dataclass(frozen=True)
class RingSlice:
    lines: list[str]
    first_line: int  # the oldest line the ring still holds (next_line when it is empty)
    next_line: int  # the number the next line will get


class LogRing(logging.Handler):
    """The daemon's recent log lines, numbered from 1, the oldest dropped past `max_bytes`.

    A handler on the root logger: it keeps what the loggers let through at the verbosity in
    effect, formatted as on stderr, so `GET /debug/log` and the support bundle show what the
    daemon's own log shows. One line longer than `MAX_LINE_BYTES` is cut: a traceback of a
    megabyte must not push out everything else.
    """

    MAX_LINE_BYTES = 16 * 1024

    def __init__(self, *, max_bytes: int, fmt: str = "text") -> None:
        super().__init__()
        self.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
        self.max_bytes = max_bytes
        self._lines: deque[tuple[str, int]] = deque()  # (line, its size in bytes)
        self._bytes = 0
        self._next = 1

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        size = len(line.encode("utf-8", "replace"))
        if size > self.MAX_LINE_BYTES:
            cut = line.encode("utf-8", "replace")[: self.MAX_LINE_BYTES].decode("utf-8", "ignore")
            line = f"{cut} [clusterm: line cut, {size} bytes]"
            size = len(line.encode("utf-8", "replace"))
        # Handler.handle holds self.lock around emit: readers take it too.
        self._lines.append((line, size))
        self._bytes += size + 1
        self._next += 1
        while self._bytes > self.max_bytes and self._lines:
            _, dropped = self._lines.popleft()
            self._bytes -= dropped + 1

    def read(self, *, since: int = 0, tail: int | None = None) -> RingSlice:
        """The lines numbered above `since`, only the last `tail` of them when given."""
        assert self.lock is not None  # made by Handler.__init__
        with self.lock:
            first = self._next - len(self._lines)
            skip = max(0, since - first + 1)
            count = len(self._lines) - skip
            if tail is not None:
                skip += max(0, count - tail)
            lines = [line for line, _ in itertools.islice(self._lines, skip, None)]
            return RingSlice(lines=lines, first_line=first, next_line=self._next)


def install_ring(ring: LogRing) -> Callable[[], None]:
    """Put `ring` on the root logger; returns what takes it off again."""
    root = logging.getLogger()
    root.addHandler(ring)
    return lambda: root.removeHandler(ring)
