"""Human output (aligned tables) and machine output (--json)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def print_table(rows: Iterable[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Aligned columns, no borders: easy to read and to grep. rich is imported only here."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header, _ in columns:
        table.add_column(header, no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(get(row)) for _, get in columns))
    # markup off: a value such as "[x]" is data, not a style.
    width = None if sys.stdout.isatty() else 10_000
    console = Console(width=width, soft_wrap=True, markup=False, highlight=False)
    console.print(table)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
    return str(value)


def error(message: str) -> None:
    sys.stderr.write(f"clusterctl: {message}\n")
