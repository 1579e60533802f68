"""README.txt of a support bundle: what each file is, and what was cut or left out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

MAX_LISTED = 200  # lines per list: the README has a reserve of its own and must fit in it


def _listed(items: list[str]) -> list[str]:
    shown = [f"- {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        shown.append(f"- ... and {len(items) - MAX_LISTED} more")
    return shown or ["- nothing"]


@dataclass
class Report:
    """What README.txt tells: each member, what was cut or left out, what could not be read."""

    contents: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def readme(
    report: Report, *, made_at: dt.datetime, replica_id: str, actor: str, since: str, budget: int
) -> str:
    width = max([len(name) for name, _ in report.contents] + [10])
    lines = [
        "clusterm support bundle",
        "",
        f"Made at {made_at.isoformat(timespec='seconds')} by replica {replica_id} for "
        f"{actor}; the timeline window: since {since}.",
        f"Size budget: {budget} bytes before compression "
        "(support_bundle_max_bytes); newest kept first.",
        "",
        "Secrets: none of these files holds one. Settings that are credentials or name a file",
        "holding one (tokens, passwords, key files, the database URL's password and query",
        "values) read <redacted>, as do the values of extra_vars and ansible_env; node var",
        "values are <redacted> as a viewer sees them; job rows never hold their inputs.",
        "",
        "Files:",
        f"- {'README.txt'.ljust(width)}  this file",
        *[f"- {name.ljust(width)}  {what}" for name, what in report.contents],
        "",
        "Cut or left out (over the size budget):",
        *_listed(report.left_out),
        "",
        "Could not be gathered:",
        *_listed(report.problems),
        "",
    ]
    return "\n".join(lines)
