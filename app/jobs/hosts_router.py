"""A job's per-host results over HTTP: `/jobs/{id}/hosts` and `/jobs/{id}/hosts/{host}`.

JSON by default; `?format=text` (or `Accept: text/plain`) gives aligned tables a support engineer
can paste (app.tables).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response

from app.auth.deps import ViewerDep
from app.deps import DbDep, SettingsDep
from app.jobs import hosts
from app.jobs.results import COUNTS
from app.tables import TEXT_MEDIA_TYPE, render_table, wants_text

router = APIRouter(tags=["jobs"])

MAX_ID = 2**31 - 1  # job ids are INTEGER columns: a larger id is a 422, not a driver error
COUNT_HEADERS = [c.upper() for c in COUNTS]
FormatQuery = Annotated[Literal["json", "text"] | None, Query()]


def _answer(body: dict[str, Any], text: str | None) -> Response:
    if text is not None:
        return Response(text, media_type=TEXT_MEDIA_TYPE)
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")


def _failure_lines(tasks: list[dict[str, Any]]) -> list[str]:
    lines = []
    for t in tasks:
        rc = f" (rc {t['rc']})" if t.get("rc") is not None else ""
        lines.append(f"{t['host']}: {t['status']} in task {t['task']!r}{rc}: {t.get('msg') or '-'}")
        if t.get("stderr_tail"):
            lines.append(f"  stderr: {' | '.join(t['stderr_tail'].splitlines()[-5:])}")
    return lines


def _job_line(job: dict[str, Any]) -> str:
    error = f": {job['error']}" if job.get("error") else ""
    check = " in check mode" if job.get("check") else ""
    return f"job {job['id']} ({job['desc']}): {job['status']}{check}{error}\n"


@router.get("/jobs/{job_id}/hosts", summary="A job's hosts: counts and failed tasks")
def list_job_hosts(
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    db: DbDep,
    settings: SettingsDep,
    _: ViewerDep,
    format: FormatQuery = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    with db.read() as session:
        body = hosts.list_hosts(session=session, job_id=job_id, kept=settings.job_dirs_kept)
    if not wants_text(format, accept):
        return _answer(body, None)
    rows = [[h["host"], *(h[c] for c in COUNTS), h["tasks_dropped"]] for h in body["hosts"]]
    text = _job_line(body["job"])
    text += render_table(["HOST", *COUNT_HEADERS, "NOT KEPT"], rows)
    failures = _failure_lines([t for h in body["hosts"] for t in h["failed_tasks"]])
    if failures:
        text += "\n" + "\n".join(failures) + "\n"
    if body["job"].get("check"):
        text += "\ncheck mode: nothing was changed; what each host would change:\n"
        for h in body["hosts"]:
            tasks = h.get("would_change") or []
            text += f"{h['host']}: {'; '.join(tasks) if tasks else 'nothing'}\n"
    return _answer(body, text)


@router.get("/jobs/{job_id}/hosts/{host}", summary="One host of a job: every task it ran")
def get_job_host(
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    host: Annotated[str, Path(min_length=1, max_length=253)],
    db: DbDep,
    settings: SettingsDep,
    _: ViewerDep,
    format: FormatQuery = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    with db.read() as session:
        body = hosts.get_host(
            session=session, job_id=job_id, host=host, kept=settings.job_dirs_kept
        )
    if not wants_text(format, accept):
        return _answer(body, None)
    text = _job_line(body["job"])
    text += "host " + body["host"] + ": "
    text += " ".join(f"{c}={body[c]}" for c in COUNTS) + "\n"
    if body["tasks_dropped"]:
        text += f"({body['tasks_dropped']} task results not kept: the job's bound was reached)\n"
    if not body["tasks_recorded"]:
        text += "(only failed tasks were recorded: the setting job_task_results is off)\n"
    rows = [
        [
            t["task"],
            t["role"],
            t["action"],
            t["status"],
            None if t["duration_ms"] is None else f"{t['duration_ms'] / 1000:.2f}s",
            t["run"] if t["run"] != "main" else None,
        ]
        for t in body["tasks"]
    ]
    text += render_table(["TASK", "ROLE", "ACTION", "STATUS", "DURATION", "RUN"], rows)
    failures = _failure_lines([t for t in body["tasks"] if "msg" in t])
    if failures:
        text += "\n" + "\n".join(failures) + "\n"
    return _answer(body, text)
