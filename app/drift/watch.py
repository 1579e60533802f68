"""The drift watch: the leader checks every interval and whenever a replica asks (app.drift.asking),
through the database (app.drift.checks).

The watch is a background component: its loop runs on the leader only. It wakes when a check is
asked for (signal DRIFT), and looks at least every `POLL_S` in case a signal was lost. Whatever it
writes is fenced: a replica that lost the lead records no finding and queues no re-join.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.cluster import known_hosts
from app.cluster.leadership import Leadership, LeadLost
from app.cluster.signals import DRIFT, Signals
from app.config import Settings
from app.db import Database, DatabaseClosed, utcnow
from app.drift import checks
from app.drift import service as drift
from app.drift.checks import Check, CheckRunning
from app.drift.source import list_cluster_nodes
from app.errors import ClustermError
from app.jobs.vocabulary import Kind
from app.nodes import service as nodes
from app.nodes.vocabulary import HostGroup
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity

log = logging.getLogger("clusterm.drift")

__all__ = ["Check", "CheckRunning", "DriftWatch", "JobQueue"]

STOP_WARN_S = 10.0
POLL_S = 1.0  # how often the leader looks for a check asked for, signal or not
ERROR_PAUSE_S = 5.0
RESULTS_KEPT = 32  # checks this replica ran, handed to its own askers without a read


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
        fence: Callable[[Session], None] | None = None,
    ) -> QueuedJob: ...


class DriftWatch:
    name = "drift watch"

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        jobs: JobQueue,
        leadership: Leadership,
        signals: Signals,
    ) -> None:
        self.db, self.settings, self.jobs = db, settings, jobs
        self.leadership, self.signals = leadership, signals
        self._remediated_at: dict[str, float] = {}  # node -> monotonic time of its last re-join
        # Held while a check runs in its thread: `stop` waits for it.
        self._lock = threading.Lock()
        self.results: dict[int, Check] = {}
        # Askers on this replica waiting for a check, woken as soon as this replica ends it.
        self.waiters: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}
        # Checks are run only between start() and stop() (see app.runtime).
        self._stopping = True
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        signals.subscribe(DRIFT, self._heard)

    @property
    def refusing(self) -> bool:
        """This replica leads but runs no check: it is stopping (or not started yet)."""
        return self.leadership.is_leader and self._stopping

    # --- the background component (the leader) --------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await run_in_threadpool(self._close_leftovers)
        self._stopping = False
        self._task = self._loop.create_task(self.run_forever())

    def refuse_work(self) -> None:
        # Also the cancel of a check in flight: its playbook is stopped (`should_cancel`) and it
        # queues no re-join.
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    async def stop(self) -> None:
        """Refuse checks, stop the loop, and wait for a check in flight to end: it would
        otherwise go on using the database after the runtime closed it."""
        self.refuse_work()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await anyio.to_thread.run_sync(self._wait_for_check)

    def _wait_for_check(self) -> None:
        while not self._lock.acquire(timeout=STOP_WARN_S):
            log.warning("still waiting for a drift check to end after its cancel")
        self._lock.release()

    def _heard(self, _payload: str) -> None:
        # In the signal listener's thread: only the event loop may touch the event.
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _close_leftovers(self) -> None:
        with self.db.write() as session:
            self.leadership.fence(session)
            closed = checks.close_running(session=session, replica=self.leadership.replica_id)
        if closed:
            log.warning("closed %d drift check(s) the last leader left running", closed)

    async def run_forever(self) -> None:
        interval = self.settings.drift_interval_s
        next_at = time.monotonic() + interval if interval > 0 else None
        while not self._stopping:
            due = next_at is not None and time.monotonic() >= next_at
            pause = POLL_S
            try:
                ran = await run_in_threadpool(self._run_next, due)
            except LeadLost:
                # The runtime stops the watch as the lead goes; the checks asked for wait for
                # the next leader.
                log.warning("the drift watch stopped checking: this replica lost the lead")
                ran, pause = False, ERROR_PAUSE_S
            except Exception:
                # The watch must outlive any one bad check or database hiccup; the log has why.
                log.exception("drift check crashed")
                ran, pause = False, ERROR_PAUSE_S
            if ran:
                if next_at is not None:
                    next_at = time.monotonic() + interval  # a check asked for serves as this one
                continue  # another may have been asked for meanwhile
            if next_at is not None:
                pause = min(pause, max(0.0, next_at - time.monotonic()))
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=pause)
            self._wake.clear()

    def _run_next(self, interval_due: bool) -> bool:
        """Take and run the next check, if any (blocking: in a thread); whether one ran."""
        with self._lock:
            if self._stopping:
                return False
            with self.db.write() as session:
                self.leadership.fence(session)
                check_id = checks.take_next(
                    session=session,
                    replica=self.leadership.replica_id,
                    interval_due=interval_due,
                )
            if check_id is None:
                return False
            try:
                found = self._check()
            except (LeadLost, DatabaseClosed):
                raise
            except Exception:
                log.exception("drift check %d crashed", check_id)
                found = Check(utcnow(), "failed", "clusterm failed while checking; see its log")
            with self.db.write() as session:
                self.leadership.fence(session)
                checks.finish(session=session, check_id=check_id, check=found)
            self.results[check_id] = found
            while len(self.results) > RESULTS_KEPT:
                del self.results[min(self.results)]
            waiter = self.waiters.get(check_id)
            if waiter is not None and not waiter[0].is_closed():
                waiter[0].call_soon_threadsafe(waiter[1].set)
            return True

    def _check(self) -> Check:
        now = utcnow()
        if self.jobs.active is not None:
            # Nodes come and go while a job runs; the job verifies its own joins.
            return Check(now, "skipped", "a job is active; checked again next interval")
        with self.db.read() as session:
            master = nodes.first_master(session=session)
        if master is None:
            return Check(now, "skipped", "no master in the cluster to ask")
        work_dir = self.settings.data_dir / "drift"
        try:
            with known_hosts.shared(self.db, self.settings.known_hosts_file):
                present = list_cluster_nodes(
                    settings=self.settings,
                    master=nodes.ansible_host(master),
                    work_dir=work_dir,
                    should_cancel=lambda: self._stopping or not self.leadership.is_leader,
                )
        except ClustermError as exc:
            log.warning("drift check failed: %s", exc.message)
            return Check(now, "failed", exc.message, master=master.name)
        with self.db.write() as session:
            self.leadership.fence(session)
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
        another job is active (one job at a time: the next node waits for the next check), and
        only while this replica leads."""
        started: list[int] = []
        now = time.monotonic()
        for name in missing:
            last = self._remediated_at.get(name)
            if last is not None and now - last < self.settings.drift_interval_s:
                continue
            if self.jobs.active is not None or self._stopping:
                break
            try:
                job = self.jobs.submit(
                    kind=Kind.UPDATE,
                    names=[name],
                    host_group=None,
                    extra_vars={},
                    actor=drift.ACTOR,
                    fence=self.leadership.fence,  # in the job's own transaction: LeadLost, none
                )
            except ClustermError as exc:
                log.warning("could not queue a re-join of %s: %s", name, exc.message)
                continue
            self._remediated_at[name] = now
            started.append(job.id)
            with self.db.write() as session:
                self.leadership.fence(session)
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
