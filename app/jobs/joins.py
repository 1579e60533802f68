"""The verified join's attempts, on the timeline while the job runs.

The join role reports each attempt as a `clusterm_report` of type `JOIN_ATTEMPT`
(ansible/README.md); runner's read loop, in the process running ansible-runner, passes the report
over the pipe to the job's thread. That thread only queues it here: a database write there would
hold up the job's output, and with it Ansible. A thread of this module's records the queued
attempts; reports of other types (`discovered`, `join_result`) are not the timeline's.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from app.db import Database
from app.jobs.models import Job
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity

log = logging.getLogger("clusterm.jobs")

JOIN_ATTEMPT = "join_attempt"
# The report's own fields, not the attempt's: the timeline's details keep the attempt's fields only.
_NOT_DETAILS = frozenset({"type", "summary"})
# A join attempt that failed but will be retried is a warning; the last one failing is an error.
_SEVERITY = {
    Result.SUCCEEDED: Severity.INFO,
    Result.RETRYING: Severity.WARNING,
    Result.FAILED: Severity.ERROR,
}
_WAIT_S = 30.0  # for the last attempts to be recorded once the run has ended


class JoinRecorder:
    """Used as `with JoinRecorder(db=..., job=...) as joins:` around a run; `joins.report` is
    the run's `on_report`."""

    def __init__(self, *, db: Database, job: Job) -> None:
        self.db, self.job = db, job
        self._reports: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._record_all, name=f"job-{job.id}-reports")

    def report(self, kind: str, report: dict[str, Any]) -> None:
        self._reports.put((kind, report))

    def __enter__(self) -> JoinRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self._reports.put(None)
        self._thread.join(timeout=_WAIT_S)

    def _record_all(self) -> None:
        while (item := self._reports.get()) is not None:
            kind, attempt = item
            if kind != JOIN_ATTEMPT:
                continue
            try:
                self._record(attempt)
            except Exception:
                # A report that cannot be recorded must not stop the job; the log has it.
                log.exception("could not record a join attempt of job %s", self.job.id)

    def _record(self, attempt: dict[str, Any]) -> None:
        number, of = int(attempt.get("attempt") or 0), int(attempt.get("of") or 0)
        joined = attempt.get("outcome") == "joined"
        result = Result.SUCCEEDED if joined else (Result.RETRYING if number < of else Result.FAILED)
        reason = str(attempt.get("reason") or "").strip() or "NodeJoined"
        duration = attempt.get("duration_s")
        with self.db.write() as session:
            timeline.record_event(
                session=session,
                action=self.job.kind,
                reason=reason,
                result=result,
                severity=_SEVERITY[result],
                node=str(attempt.get("node") or "") or None,
                actor=self.job.actor,
                job_id=self.job.id,
                attempt=number or None,
                duration_ms=int(float(duration) * 1000) if duration not in (None, "") else None,
                note=str(attempt.get("summary") or attempt.get("detail") or ""),
                details={k: v for k, v in attempt.items() if k not in _NOT_DETAILS},
            )
