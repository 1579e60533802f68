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
from app.errors import ClustermError
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


class DriftWatch:
    def __init__(self, *, db: Database, settings: Settings, jobs: JobManager) -> None:
        self.db, self.settings, self.jobs = db, settings, jobs
        self.last: Check | None = None
        self._remediated_at: dict[str, float] = {}  # node -> monotonic time of its last re-join
        self._lock = threading.Lock()  # one check at a time (the loop and POST /drift/check)

    def check(self) -> Check:
        """Run one check now (blocking: call it from a thread)."""
        with self._lock:
            self.last = self._check()
            return self.last

    def _check(self) -> Check:
        now = utcnow()
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
            )
        except ClustermError as exc:
            log.warning("drift check failed: %s", exc.message)
            return Check(now, "failed", exc.message, master=master.name)
        with self.db.write() as session:
            found = drift.apply_node_list(session=session, present=present, now=now)
        for name in found.newly_missing:
            log.warning("node %s is missing from the cluster", name)
        jobs = self._remediate(found.missing) if self.settings.drift_remediate else []
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
            except Exception:
                # The watch must outlive any one bad check; the log has the cause.
                log.exception("drift check crashed")
