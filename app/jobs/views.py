"""How a job and its log are shown: JSON built by hand (a 20,000-line log must serialise in
milliseconds, so it skips response-model validation), plain text, and ANSI stripping."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import Any

from app.ansible.logbuffer import LogSlice
from app.jobs.models import Job
from app.tables import render_table

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
        "check": bool(job.check),
        "tags": list(job.tags or []),
        "skip_tags": list(job.skip_tags or []),
    }


def log_text(piece: LogSlice, *, color: bool) -> str:
    if not piece.lines:
        return ""
    text = "\n".join(piece.lines) + "\n"
    return text if color or "\x1b" not in text else _ANSI.sub("", text)


def render_log(view: dict[str, Any], piece: LogSlice, *, text: bool, color: bool) -> bytes:
    """The body of `GET /info/job/{which}` and `GET /jobs/{id}/log`: `view` (job_view) with the
    slice of its log, as JSON; or the lines alone, as text."""
    if text:
        return log_text(piece, color=color).encode("utf-8")
    view.update(
        logs=piece.lines if color else [render_line(line, False) for line in piece.lines],
        first_line=piece.first_line,
        next_line=piece.next_line,
        dropped_lines=piece.dropped_lines,
        dropped_bytes=piece.dropped_bytes,
        gap=None if piece.gap is None else vars(piece.gap),
        complete=piece.complete,
    )
    return json.dumps(view, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


JOB_HEADERS = ("ID", "KIND", "STATUS", "RC", "NODES", "ACTOR", "CREATED", "FINISHED", "ERROR")
HOST_HEADERS = ("HOST", "OK", "CHANGED", "FAILED", "UNREACHABLE", "SKIPPED", "RESCUED")


def _stamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _kind(job: Job) -> str:
    """The job's kind, with how it ran when that differs: `update (check, tags packages)`."""
    how = []
    if job.check:
        how.append("check")
    if job.tags:
        how.append(f"tags {','.join(job.tags)}")
    if job.skip_tags:
        how.append(f"skip {','.join(job.skip_tags)}")
    return f"{job.kind} ({', '.join(how)})" if how else str(job.kind)


def _job_row(job: Job) -> tuple[object, ...]:
    return (
        job.id,
        _kind(job),
        job.status,
        job.rc,
        job.nodes,
        job.actor,
        _stamp(job.created_at),
        _stamp(job.finished_at),
        job.error,
    )


def jobs_table(jobs: Iterable[Job]) -> str:
    """`GET /jobs?format=text`: one job a row, newest first, as clusterctl prints them."""
    return render_table(JOB_HEADERS, [_job_row(job) for job in jobs])


def job_text(job: Job, would_change: dict[str, list[str]] | None = None) -> str:
    """`GET /jobs/{id}?format=text`: the job's row, then one row per host Ansible reported; for a
    check job, what each host would change."""
    text = render_table(JOB_HEADERS, [_job_row(job)])
    if job.hosts:
        keys = [header.lower() for header in HOST_HEADERS[1:]]
        rows = [
            (host, *(counts.get(k, 0) for k in keys)) for host, counts in sorted(job.hosts.items())
        ]
        text += "\n" + render_table(HOST_HEADERS, rows)
    if would_change is not None:
        text += "\ncheck mode: nothing was changed; what each host would change:\n"
        for host, tasks in would_change.items():
            text += f"{host}: {'; '.join(tasks) if tasks else 'nothing'}\n"
    return text
