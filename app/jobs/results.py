"""What a job did on each host: per-host counts and per-task results, stored with the job.

The process running Ansible sends task results in batches (app.ansible.process); the job's
thread hands them to a `ResultsRecorder`, which only queues them in memory. The flusher stores
the queue with each log batch, in the same fenced transaction (app.jobs.execution): never a
transaction per task. The job's end stores the rest and replaces the live counts by Ansible's
recap, which alone knows which failures a `rescue` caught.

Bounds (docs/jobs.md#per-host-results): at most `TASK_ROWS_MAX` task rows per job; past it only
failed and unreachable tasks are kept (a failure is what a reader looks for), and each host says
how many of its results were left out. A failure's texts are cut in the runner's process
(app.ansible.taskresults). The rows go with the job's log (logstore.drop_old_logs).

The recorder also remembers, per host, the failure that ended it, for the timeline's HostFailed
(`failures`): whatever the bound and the setting job_task_results, which keeps it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.ansible.spec import TaskResult, TaskStatus
from app.jobs.models import JobHost, JobTask
from app.jobs.vocabulary import FailureReason, Status

TASK_ROWS_MAX = 20_000
MESSAGE_MAX = 1000  # characters of a failure's message on the timeline
COUNTS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
ALWAYS_KEPT = frozenset({TaskStatus.FAILED, TaskStatus.UNREACHABLE})
# A failed task's message that starts with one of these names its reason (ansible/README.md,
# "What clusterm reads from the run").
_MESSAGE_REASONS = (
    FailureReason.NODE_NAME_MISMATCH,
    FailureReason.JOIN_FAILED,
    FailureReason.NODE_VANISHED_AFTER_JOIN,
)
_STOPPED = {
    Status.CANCELED: FailureReason.CANCELED,
    Status.TIMEOUT: FailureReason.TIMED_OUT,
    Status.INTERRUPTED: FailureReason.INTERRUPTED,
}


@dataclass(frozen=True)
class HostFailure:
    """Why one host failed, as its HostFailed event says it."""

    reason: FailureReason
    task: str | None = None
    message: str | None = None

    def note(self) -> str:
        """One line: the reason, the task, the message."""
        text = self.reason.value
        if self.task:
            text += f" in task {self.task!r}"
        if self.message:
            text += f": {self.message}"
        return " ".join(text.split())

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "task": self.task, "message": self.message}


def _cut(text: str, limit: int = MESSAGE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def explain(
    *,
    status: Status,
    counts: Mapping[str, int] | None,
    last_failed: TaskResult | None,
    last_unreachable: TaskResult | None,
    running_task: str | None,
) -> HostFailure:
    """The reason of a host that did not succeed, from how the job ended and the host's tasks."""
    stopped = _STOPPED.get(status)
    if stopped is not None:
        return HostFailure(stopped, task=running_task)
    counts = counts or {}
    if counts.get("unreachable") and last_unreachable is not None:
        return HostFailure(
            FailureReason.UNREACHABLE,
            task=last_unreachable.task,
            message=_cut(last_unreachable.msg or ""),
        )
    if last_failed is not None:
        message = last_failed.msg or ""
        reason = next(
            (r for r in _MESSAGE_REASONS if message.startswith(f"{r.value}: ")),
            FailureReason.TASK_FAILED,
        )
        if reason != FailureReason.TASK_FAILED:
            message = message[len(reason.value) + 2 :]
        elif last_failed.rc is not None or last_failed.stderr_tail:
            # A command's msg only says "non-zero return code": its rc and stderr say more.
            if last_failed.rc is not None:
                message += f" (rc {last_failed.rc})"
            if last_failed.stderr_tail:
                message += f"; stderr: {' '.join(last_failed.stderr_tail.split())[-300:]}"
        return HostFailure(reason, task=last_failed.task, message=_cut(message) or None)
    if counts.get("unreachable"):
        return HostFailure(FailureReason.UNREACHABLE)
    return HostFailure(FailureReason.TASK_FAILED)


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass
class _Host:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    dropped: int = 0
    stored: bool = False  # its row exists (committed)
    dirty: bool = False
    last_failed: TaskResult | None = None
    last_unreachable: TaskResult | None = None


@dataclass
class _Batch:
    rows: list[dict[str, Any]]
    hosts: dict[str, dict[str, Any]]


class ResultsRecorder:
    """One job's task results on the leader: queued by the job's thread, stored by the flusher.

    `store` runs inside the caller's fenced transaction; what it wrote is forgotten only when
    `stored` says that transaction committed, so a batch that failed goes with the next one."""

    def __init__(self, *, job_id: int, all_tasks: bool, max_rows: int = TASK_ROWS_MAX) -> None:
        self.job_id, self.all_tasks, self.max_rows = job_id, all_tasks, max_rows
        self.run = "main"
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._hosts: dict[str, _Host] = {}
        self._kept = 0

    def add(self, results: Iterable[TaskResult]) -> None:
        """Queue a batch from the runner's process (O(batch), no I/O)."""
        with self._lock:
            main = self.run == "main"
            for result in results:
                host = self._hosts.get(result.host)
                if host is None:
                    host = self._hosts[result.host] = _Host()
                if main:
                    self._count(host, result)
                if self._kept >= self.max_rows and result.status not in ALWAYS_KEPT:
                    host.dropped += 1
                    host.dirty = True
                    continue
                self._kept += 1
                self._rows.append(self._row(result))

    def _count(self, host: _Host, result: TaskResult) -> None:
        counts, status = host.counts, result.status
        # As Ansible's recap counts: ok includes changed, and an ignored failure.
        if status in (TaskStatus.OK, TaskStatus.CHANGED, TaskStatus.IGNORED):
            counts["ok"] += 1
        if status == TaskStatus.CHANGED:
            counts["changed"] += 1
        elif status == TaskStatus.IGNORED:
            counts["ignored"] += 1
        elif status == TaskStatus.SKIPPED:
            counts["skipped"] += 1
        elif status == TaskStatus.FAILED:
            counts["failed"] += 1
            host.last_failed = result
        elif status == TaskStatus.UNREACHABLE:
            counts["unreachable"] += 1
            host.last_unreachable = result
        host.dirty = True

    def _row(self, r: TaskResult) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "host": r.host,
            "run": self.run,
            "task": r.task,
            "role": r.role,
            "action": r.action,
            "status": r.status,
            "started_at": _parse_time(r.started_at),
            "duration_ms": None if r.duration_s is None else int(r.duration_s * 1000),
            "msg": r.msg,
            "rc": r.rc,
            "stdout_tail": r.stdout_tail,
            "stderr_tail": r.stderr_tail,
        }

    # --- storing ---------------------------------------------------------------------------------

    def store(self, session: Session) -> _Batch:
        """Write what is queued (in the caller's fenced transaction); pass the batch to `stored`
        once it has committed."""
        with self._lock:
            batch = _Batch(
                rows=list(self._rows),
                hosts={
                    name: {
                        **h.counts,
                        "tasks_dropped": h.dropped,
                        "stored": h.stored,
                    }
                    for name, h in self._hosts.items()
                    if h.dirty
                },
            )
            for host in self._hosts.values():
                host.dirty = False
        try:
            if batch.rows:
                session.execute(sa.insert(JobTask), batch.rows)
            self._write_hosts(session, batch.hosts)
        except BaseException:
            self.unstored(batch)
            raise
        return batch

    def _write_hosts(self, session: Session, hosts: Mapping[str, Mapping[str, Any]]) -> None:
        new = [self._host_row(n, v) for n, v in hosts.items() if not v["stored"]]
        old = [self._host_row(n, v) for n, v in hosts.items() if v["stored"]]
        if new:
            session.execute(sa.insert(JobHost), new)
        if old:
            session.execute(sa.update(JobHost), old)  # by primary key, one statement

    def _host_row(self, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        row = {"job_id": self.job_id, "host": name, "tasks_recorded": self.all_tasks}
        row.update({k: int(values.get(k, 0)) for k in (*COUNTS, "tasks_dropped")})
        return row

    def stored(self, batch: _Batch) -> None:
        """The transaction of `store` committed: forget its rows."""
        with self._lock:
            del self._rows[: len(batch.rows)]
            for name in batch.hosts:
                self._hosts[name].stored = True

    def unstored(self, batch: _Batch) -> None:
        """The transaction of `store` failed: its hosts go with the next batch again."""
        with self._lock:
            for name in batch.hosts:
                self._hosts[name].dirty = True

    def finish(self, session: Session, recap: Mapping[str, Mapping[str, int]]) -> _Batch:
        """The job's last batch, with Ansible's recap as the hosts' counts: it alone knows
        which failures a rescue caught (their rows become `rescued`)."""
        with self._lock:
            for name, counts in recap.items():
                host = self._hosts.get(name)
                if host is None:
                    host = self._hosts[name] = _Host()
                host.counts = {k: int(counts.get(k, 0)) for k in COUNTS}
                host.dirty = True
        batch = self.store(session)
        for name, counts in recap.items():
            if counts.get("rescued"):
                self._mark_rescued(session, name, int(counts["rescued"]))
        return batch

    def _mark_rescued(self, session: Session, host: str, rescued: int) -> None:
        # A rescued failure comes before the host's last failure (a failed host runs no more
        # tasks but its rescue and always sections): the first `rescued` failures are those.
        ids = session.scalars(
            sa.select(JobTask.id)
            .where(
                JobTask.job_id == self.job_id,
                JobTask.host == host,
                JobTask.run == "main",
                JobTask.status == TaskStatus.FAILED,
            )
            .order_by(JobTask.id)
            .limit(rescued)
        ).all()
        if ids:
            session.execute(
                sa.update(JobTask).where(JobTask.id.in_(ids)).values(status=TaskStatus.RESCUED)
            )

    def failures(
        self,
        *,
        status: Status,
        hosts: Mapping[str, Mapping[str, int]],
        running: Mapping[str, str],
        names: Iterable[str],
    ) -> dict[str, HostFailure]:
        """For each of `names`, why it failed, if it did (see `explain`)."""
        with self._lock:
            known = dict(self._hosts)
        out = {}
        for name in names:
            host = known.get(name)
            out[name] = explain(
                status=status,
                counts=hosts.get(name),
                last_failed=host.last_failed if host else None,
                last_unreachable=host.last_unreachable if host else None,
                running_task=running.get(name),
            )
        return out


def drop_old(*, session: Session, oldest_kept: int) -> None:
    """Delete the results of every job older than `oldest_kept` (with its log)."""
    session.execute(sa.delete(JobTask).where(JobTask.job_id < oldest_kept))
    session.execute(sa.delete(JobHost).where(JobHost.job_id < oldest_kept))
