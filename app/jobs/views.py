"""How a job and its log are shown: JSON built by hand (a 20,000-line log must serialise in
milliseconds, so it skips response-model validation), plain text, and ANSI stripping."""

from __future__ import annotations

import re
from typing import Any

from app.ansible.logbuffer import LogSlice
from app.jobs.models import Job

# CSI sequences (colours, cursor moves) and the two-character escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def render_line(line: str, color: bool) -> str:
    return line if color or "\x1b" not in line else _ANSI.sub("", line)


def job_view(job: Job) -> dict[str, Any]:
    def ts(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": job.id,
        "kind": job.kind,
        "desc": job.desc,
        "nodes": list(job.nodes),
        "host_group": job.host_group,
        "actor": job.actor,
        "status": job.status,
        "error": job.error,
        "rc": job.rc,
        "created_at": ts(job.created_at),
        "started_at": ts(job.started_at),
        "finished_at": ts(job.finished_at),
        "hosts": job.hosts,
    }


def log_text(piece: LogSlice, *, color: bool) -> str:
    if not piece.lines:
        return ""
    text = "\n".join(piece.lines) + "\n"
    return text if color or "\x1b" not in text else _ANSI.sub("", text)
