"""The drift watch's loop: check every interval, remediate when asked, remember the last check."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio.to_thread
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.db import Database, utcnow
from app.drift import service as drift
from app.drift.source import list_cluster_nodes
from app.errors import ClustermError, Conflict, NotFound, Unavailable
from app.jobs.vocabulary import Kind
from app.nodes import service as nodes
from app.nodes.vocabulary import HostGroup
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity

log = logging.getLogger("clusterm.drift")

STOP_WARN_S = 10.0


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


class QueuedJob(Protocol):
    @property
    def id(self) -> int: ...


class JobQueue(Protocol):
    """What the watch needs of the job worker (`app.jobs.worker.JobManager`, which the runtime
    hands it): whether a job runs, and a way to queue a re-join. Named here, so that drift uses
    the jobs domain without importing its worker."""

    @property
    def active(self) -> object | None: ...

    def submit(
        self,
        *,
        kind: Kind,
        names: list[str],
        host_group: HostGroup | None,
        extra_vars: dict[str, Any],
        actor: str,
    ) -> QueuedJob: ...


class DriftWatch:
    name = "drift watch"

    def __init__(self, *, db: Database, settings: Settings, jobs: JobQueue) -> None:
        self.db, self.settings, self.jobs = db, settings, jobs
        self.last: Check | None = None
        self._remediated_at: dict[str, float] = {}  # node -> monotonic time of its last re-join
        # One check at a time (the loop and POST /drift/check). Never waited for: a second
        # caller is told at once, rather than holding a worker thread for up to drift_timeout_s.
        self._lock = threading.Lock()
        self._running_since: dt.datetime | None = None
        # Checks are taken only between start() and stop() (see app.runtime).
        self._stopping = True
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping = False
        self._loop = asyncio.get_running_loop().create_task(self.run_forever())

    def refuse_work(self) -> None:
        # Also the cancel of a check in flight: its playbook is stopped (`should_cancel`) and it
        # queues no re-join.
        self._stopping = True

    async def stop(self) -> None:
        """Refuse checks, stop the loop, and wait for a check in flight to end: it would
        otherwise go on using the database after the runtime closed it."""
        self.refuse_work()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await anyio.to_thread.run_sync(self._wait_for_check)

    def _wait_for_check(self) -> None:
        while not self._lock.acquire(timeout=STOP_WARN_S):
            log.warning("still waiting for a drift check to end after its cancel")
        self._lock.release()

    def _refused(self) -> Unavailable:
        return Unavailable(
            "clusterm is stopping and runs no drift check; ask again once it is back",
            retry_after_s=5,
        )

    def last_check(self) -> Check:
        if self.last is None:
            raise NotFound(
                "no drift check has run yet; one runs every drift_interval_s "
                f"({self.settings.drift_interval_s:g} s), or now with POST /drift/check"
            )
        return self.last

    def check(self) -> Check:
        """Run one check now (blocking: call it from a thread); CheckRunning if one runs,
        Unavailable while the watch is stopped."""
        if self._stopping:
            raise self._refused()
        if not self._lock.acquire(blocking=False):
            since = self._running_since
            raise CheckRunning(
                "a drift check is already running"
                + (f" (since {since.isoformat(timespec='seconds')})" if since else "")
                + "; its result will be at GET /info/drift when it ends",
                running_since=since.isoformat() if since else None,
            )
        try:
            if self._stopping:  # stopped between the look above and the lock: `stop` may
                raise self._refused()  # already have waited for the lock, and returned
            self._running_since = utcnow()
            self.last = self._check()
            return self.last
        finally:
            self._running_since = None
            self._lock.release()

    def _check(self) -> Check:
        now = utcnow()
        if self.jobs.active is not None:
            # Nodes come and go while a job runs; the job verifies its own joins.
            return Check(now, "skipped", "a job is active; checked again next interval")
        with self.db.read() as session:
            master = nodes.first_master(session=session)
        if master is None:
            return Check(now, "skipped", "no master in the cluster to ask")
        try:
            present = list_cluster_nodes(
                settings=self.settings,
                master=nodes.ansible_host(master),
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
                    result=Result.STARTED,
                    severity=Severity.WARNING,
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
            except Unavailable:
                return  # the watch is stopping
            except Exception:
                # The watch must outlive any one bad check; the log has the cause.
                log.exception("drift check crashed")
