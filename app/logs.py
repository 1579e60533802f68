"""The daemon's own logging: stderr, one line per record, as text or JSON.

No stored value reaches a log line through an error: SQLAlchemy leaves bound parameters out of its
errors (app/db.py), and the lines in which PostgreSQL quotes the data of a failed statement
(`DETAIL: Failing row contains (...)`, `Key (...)=(...)`, `CONTEXT: JSON data ...`) are hidden from
every traceback, since a row may hold a node's vars.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
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
