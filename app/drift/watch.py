"""The drift watch's loop: check every interval, remediate when asked, remember the last check."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.db import Database, utcnow
from app.drift import service as drift
from app.drift.source import list_cluster_nodes
from app.errors import ClustermError, Conflict
from app.jobs.models import Kind
from app.jobs.worker import JobManager
from app.timeline import service as timeline

log = logging.getLogger("clusterm.drift")


@dataclass
class Check:
    """What the last check found (GET /info/drift)."""

    at: dt.datetime
    outcome: str  # checked | skipped | failed
    message: str
    master: str | None = None
    missing: list[str] = field(default_factory=list)
    remediation_jobs: list[int] = field(default_factory=list)


class CheckRunning(Conflict):
    pass


class DriftWatch:
    def __init__(self, *, db: Database, settings: Settings, jobs: JobManager) -> None:
        self.db, self.settings, self.jobs = db, settings, jobs
        self.last: Check | None = None
        self._remediated_at: dict[str, float] = {}  # node -> monotonic time of its last re-join
        # One check at a time (the loop and POST /drift/check). Never waited for: a second
        # caller is told at once, rather than holding a worker thread for up to drift_timeout_s.
        self._lock = threading.Lock()
        self._running_since: dt.datetime | None = None
        self._stopping = False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Cancel a check in flight and wait for it (blocking: call it from a thread).

        Called before the store closes: a check still running in its thread would otherwise go
        on using the database after it was disposed, and could queue a re-join job during
        shutdown."""
        self._stopping = True
        if self._lock.acquire(timeout=timeout_s):
            self._lock.release()
        else:
            log.warning("a drift check was still running %.0f s after shutdown began", timeout_s)

    def check(self) -> Check:
        """Run one check now (blocking: call it from a thread); CheckRunning if one runs."""
        if not self._lock.acquire(blocking=False):
            since = self._running_since
            raise CheckRunning(
                "a drift check is already running"
                + (f" (since {since.isoformat(timespec='seconds')})" if since else "")
                + "; its result will be at GET /info/drift when it ends",
                running_since=since.isoformat() if since else None,
            )
        try:
            self._running_since = utcnow()
            self.last = self._check()
            return self.last
        finally:
            self._running_since = None
            self._lock.release()

    def _check(self) -> Check:
        now = utcnow()
        if self._stopping:
            return Check(now, "skipped", "clusterm is stopping")
        if self.jobs.active is not None:
            # Nodes come and go while a job runs; the job verifies its own joins.
            return Check(now, "skipped", "a job is active; checked again next interval")
        with self.db.read() as session:
            master = drift.commissioned_master(session=session)
        if master is None:
            return Check(now, "skipped", "no commissioned master to ask")
        try:
            present = list_cluster_nodes(
                settings=self.settings,
                master=master,
                work_dir=self.settings.data_dir / "drift",
                should_cancel=lambda: self._stopping,
            )
        except ClustermError as exc:
            log.warning("drift check failed: %s", exc.message)
            return Check(now, "failed", exc.message, master=master.name)
        with self.db.write() as session:
            found = drift.apply_node_list(session=session, present=present, now=now)
        for name in found.newly_missing:
            log.warning("node %s is missing from the cluster", name)
        remediate = self.settings.drift_remediate and not self._stopping
        jobs = self._remediate(found.missing) if remediate else []
        message = (
            f"{len(present)} Nodes in the cluster; missing: {', '.join(found.missing)}"
            if found.missing
            else f"{len(present)} Nodes in the cluster; none missing"
        )
        return Check(now, "checked", message, master.name, found.missing, jobs)

    def _remediate(self, missing: list[str]) -> list[int]:
        """Queue a re-join for a missing node: at most once per interval per node, never while
        another job is active (one job at a time: the next node waits for the next check)."""
        started: list[int] = []
        now = time.monotonic()
        for name in missing:
            last = self._remediated_at.get(name)
            if last is not None and now - last < self.settings.drift_interval_s:
                continue
            if self.jobs.active is not None:
                break
            try:
                job = self.jobs.submit(
                    kind=Kind.UPDATE,
                    names=[name],
                    host_group=None,
                    extra_vars={},
                    actor=drift.ACTOR,
                )
            except ClustermError as exc:
                log.warning("could not queue a re-join of %s: %s", name, exc.message)
                continue
            self._remediated_at[name] = now
            started.append(job.id)
            with self.db.write() as session:
                timeline.record_event(
                    session=session,
                    action="drift",
                    reason="RejoinQueued",
                    result="started",
                    severity="warning",
                    node=name,
                    actor=drift.ACTOR,
                    job_id=job.id,
                    note=f"node {name} is missing from the cluster: re-join queued as job {job.id}",
                )
        return started

    async def run_forever(self) -> None:
        interval = self.settings.drift_interval_s
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await run_in_threadpool(self.check)
            except CheckRunning:
                # Someone asked for a check just before: it serves as this interval's.
                log.debug("drift check skipped: one is already running")
            except Exception:
                # The watch must outlive any one bad check; the log has the cause.
                log.exception("drift check crashed")
