"""ansible-runner's task-end events turned into TaskResults: bounded, and never a task's arguments.

What is read from an event (docs/contracts.md#runner-task-events): `event_data.host`, `task`,
`role`, `task_action`, `start`, `duration`, `ignore_errors`, and from `res` only `msg`, `rc`,
`stdout`/`stderr` (or `module_stdout`/`module_stderr` when the module itself broke), for a
failed or unreachable task. `res.invocation` (the module's arguments, which may hold extra vars)
and `res.cmd` are never read. A `no_log` task's `res` arrives from runner's callback already
replaced by `{"censored": ...}`: it is kept as that, and its `msg` says so.
"""

from __future__ import annotations

from typing import Any

from app.ansible.spec import TASK_NAME_MAX, TASK_TEXT_MAX, TaskResult, TaskStatus

# The events of a task's end on a host. The per-item events (runner_item_on_*) are not: the
# task's own event follows them, with the items' results in `res.results`.
TASK_END_EVENTS = frozenset(
    {"runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"}
)
HIDDEN = "the output is hidden: the task has no_log: true"
_FAILED = frozenset({TaskStatus.FAILED, TaskStatus.IGNORED, TaskStatus.UNREACHABLE})


def head_tail(text: str, limit: int = TASK_TEXT_MAX) -> str:
    """At most `limit` characters: the head says what failed, the tail how it ended."""
    if len(text) <= limit:
        return text
    marker = f" …[{len(text) - limit} chars cut]… "
    room = max(limit - len(marker), 0)
    return text[: room // 2] + marker + text[len(text) - (room - room // 2) :]


def tail(text: str, limit: int = TASK_TEXT_MAX) -> str:
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1 :]


def _status(kind: str, data: dict[str, Any], res: dict[str, Any]) -> TaskStatus:
    if kind == "runner_on_unreachable":
        return TaskStatus.UNREACHABLE
    if kind == "runner_on_failed":
        return TaskStatus.IGNORED if data.get("ignore_errors") else TaskStatus.FAILED
    if kind == "runner_on_skipped":
        return TaskStatus.SKIPPED
    return TaskStatus.CHANGED if res.get("changed") else TaskStatus.OK


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _message(res: dict[str, Any]) -> str | None:
    if "censored" in res:
        return HIDDEN
    msg = _text(res.get("msg"))
    results = res.get("results")
    if isinstance(results, list):
        # A loop: its own msg only says that an item failed; the items' messages say why.
        failed = [
            r.get("msg") if "censored" not in r else HIDDEN
            for r in results
            if isinstance(r, dict) and (r.get("failed") or r.get("unreachable") or "censored" in r)
        ]
        items = "; ".join(str(m) for m in failed if m)
        msg = f"{msg}: {items}" if msg and items else (msg or items or None)
    return head_tail(msg) if msg else None


def task_result(event: dict[str, Any]) -> TaskResult | None:
    """The TaskResult of a task-end event; None for any other event."""
    kind = event.get("event")
    if kind not in TASK_END_EVENTS:
        return None
    data = event.get("event_data") or {}
    res = data.get("res")
    res = res if isinstance(res, dict) else {}
    status = _status(str(kind), data, res)
    duration = data.get("duration")
    result = TaskResult(
        host=str(data.get("host") or "")[:253],
        task=head_tail(str(data.get("task") or ""), TASK_NAME_MAX),
        role=(_text(data.get("role")) or "")[:255] or None,
        action=str(data.get("resolved_action") or data.get("task_action") or "")[:255],
        status=status,
        started_at=_text(data.get("start")),
        duration_s=float(duration) if isinstance(duration, int | float) else None,
    )
    if status not in _FAILED:
        return result
    rc = res.get("rc")
    stdout = _text(res.get("stdout")) or _text(res.get("module_stdout"))
    stderr = _text(res.get("stderr")) or _text(res.get("module_stderr"))
    return TaskResult(
        host=result.host,
        task=result.task,
        role=result.role,
        action=result.action,
        status=status,
        started_at=result.started_at,
        duration_s=result.duration_s,
        msg=_message(res),
        rc=rc if isinstance(rc, int) and not isinstance(rc, bool) else None,
        stdout_tail=tail(stdout) if stdout else None,
        stderr_tail=tail(stderr) if stderr else None,
    )
