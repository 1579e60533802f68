"""The runtime: the app's services in one typed container, started and stopped in one order.

Start-up, each step undone in reverse if a later one fails (an `AsyncExitStack`):
1. on SQLite, the lock that keeps one clusterm process per database file (app.files);
2. the database: the data dir, the migrations (once for all replicas, under a database lock),
   the bootstrap token (created once for the cluster), the timeline's listeners;
3. the signals between replicas (app.cluster.signals), the lead (app.cluster.leadership), the
   Ansible forkserver and the verbosity clients; this replica's row in `cluster_replica`;
4. the lead. On SQLite the process leads at once; on PostgreSQL the lease thread campaigns, and
   every time this replica gains the lead: the jobs the last leader left running are marked
   interrupted (`JobManager.recover`), `LeaderChanged` goes on the timeline (unless it is the
   database's first lead), and the background
   group starts, in this order: the job runner, the timeline retention, the verbosity revert
   worker (reverts due meanwhile run first thing), the drift watch. When it loses the lead, its
   running playbook is killed at once and the group stops.

Stop, the reverse:
a. the replica stops campaigning; every component of the group stops accepting work at once;
b. the producers stop, each waited for: the drift watch (with a check in flight in its
   thread, which could otherwise queue a re-join), the revert worker, the retention purger;
c. the active job drains: it is cancelled, ends as interrupted, and its nodes are settled;
d. the lead is let go at once (another replica takes it without waiting out the lease), the
   replica's row says it stopped;
e. the verbosity clients close, the signals stop, then the database is disposed; any use of it
   after that raises `DatabaseClosed`.

The background group (`Runtime.background`) can also be stopped and started again while the
daemon runs, any number of times: it runs exactly while this replica leads.

Routes reach the services through the typed dependencies of `app.deps` (`JobsDep`, ...).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import files
from app.ansible import process
from app.auth import service as auth
from app.auth.refusals import RefusalLog
from app.cluster import replicas
from app.cluster.leadership import Change, SoleLeader
from app.cluster.lease import LeaseLeadership
from app.cluster.signals import Signals
from app.config import VERSION, Settings
from app.db import (
    Database,
    create_db_engine,
    head_revisions,
    migration_lock,
    unknown_revisions,
    upgrade,
    utcnow,
)
from app.demo import start_demo
from app.drift.watch import DriftWatch
from app.followers import Followers
from app.jobs.stats import EndedJobs
from app.jobs.worker import JobManager
from app.logs import LogRing, install_ring
from app.timeline import service as timeline
from app.timeline.retention import Purger
from app.timeline.vocabulary import Result, Severity
from app.verbosity.reverts import RevertWorker
from app.verbosity.service import Verbosity

log = logging.getLogger("clusterm")


class Background(Protocol):
    """A background component: started and stopped with its group, any number of times."""

    name: str

    async def start(self) -> None: ...

    def refuse_work(self) -> None:
        """Take no new work from now on; never blocks (what runs is stopped by `stop`)."""

    async def stop(self) -> None:
        """Refuse work, stop what runs and wait for it; a no-op on a stopped component."""


class BackgroundGroup:
    """Components started in the order given and stopped in reverse, after all of them have
    stopped accepting work. A start that fails half-way stops what it had started."""

    def __init__(self, components: Sequence[Background]) -> None:
        self.components = tuple(components)
        self._stack: AsyncExitStack | None = None
        # A start and a stop asked for at once (a lead gained and lost) run one after the other.
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._stack is not None

    async def start(self) -> None:
        async with self._lock:
            if self._stack is not None:
                return
            async with AsyncExitStack() as stack:
                for component in self.components:
                    await component.start()
                    stack.push_async_callback(component.stop)
                # Pushed last, so it runs first: nothing takes work while the others stop.
                stack.callback(self._refuse_work)
                self._stack = stack.pop_all()
        log.info("background work started: %s", ", ".join(c.name for c in self.components))

    async def stop(self) -> None:
        async with self._lock:
            stack, self._stack = self._stack, None
            if stack is None:
                return
            await stack.aclose()
        log.info("background work stopped")

    def _refuse_work(self) -> None:
        for component in self.components:
            component.refuse_work()


@dataclass(frozen=True)
class Services:
    """What exists only while the runtime runs."""

    db: Database
    jobs: JobManager
    verbosity: Verbosity
    drift: DriftWatch
    background: BackgroundGroup
    leadership: SoleLeader | LeaseLeadership
    signals: Signals


class NotRunning(RuntimeError):
    pass


class Runtime:
    """The app's services. The request-scoped ones (settings, token cache, refusal log, live
    streams, the ended jobs' totals) exist from the start; the rest from `run()` on."""

    def __init__(self, settings: Settings, *, demo: bool = False) -> None:
        self.settings = settings
        self.demo = demo
        self.token_cache = auth.TokenCache()
        self.refusals = RefusalLog()  # how often a refused request is recorded
        self.followers = Followers(settings.max_stream_followers)  # open live streams
        # The ended jobs' totals GET /metrics reports, kept between scrapes (app.jobs.stats).
        self.ended_jobs = EndedJobs()
        # The recent log (GET /debug/log, the support bundle), kept while the runtime runs.
        self.log_ring = LogRing(max_bytes=settings.own_log_ring_bytes, fmt=settings.log_format)
        self.identity = replicas.Identity(
            replica_id=settings.effective_replica_id,
            advertise_url=settings.effective_advertise_url,
            version=VERSION,
            schema=",".join(sorted(head_revisions())),
        )
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            raise NotRunning("clusterm's runtime has not started")
        return self._services

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def jobs(self) -> JobManager:
        return self.services.jobs

    @property
    def verbosity(self) -> Verbosity:
        return self.services.verbosity

    @property
    def drift(self) -> DriftWatch:
        return self.services.drift

    @property
    def background(self) -> BackgroundGroup:
        return self.services.background

    @property
    def leadership(self) -> SoleLeader | LeaseLeadership:
        return self.services.leadership

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Runtime]:
        """Start everything in the order of the module docstring; stop it in reverse."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            stack.callback(install_ring(self.log_ring))
            if settings.is_sqlite:
                stack.callback(
                    files.lock_sqlite(settings.effective_database_url, owner=self._owner())
                )
            db, newer = await run_in_threadpool(open_database, settings)
            stack.callback(db.dispose)
            signals = Signals(db)
            await run_in_threadpool(signals.start)
            stack.callback(signals.stop)
            leadership: SoleLeader | LeaseLeadership
            if settings.is_sqlite:
                leadership = SoleLeader(self.identity.replica_id)
            else:
                leadership = LeaseLeadership(
                    db=db,
                    signals=signals,
                    replica_id=self.identity.replica_id,
                    ttl_s=settings.lease_ttl_s,
                    cannot_lead=_schema_check,
                    on_gain=self._gain,
                    kill_now=lambda: self.jobs.kill_now(),
                    on_loss=self._lose,
                )
            jobs = JobManager(db=db, settings=settings, leadership=leadership, signals=signals)
            stack.callback(jobs.refuse_work)
            await run_in_threadpool(process.start_forkserver)
            verbosity = Verbosity.create(
                db=db, settings=settings, leadership=leadership, signals=signals
            )
            stack.push_async_callback(verbosity.close)
            drift = DriftWatch(
                db=db, settings=settings, jobs=jobs, leadership=leadership, signals=signals
            )
            background = BackgroundGroup(
                [
                    jobs.runner,
                    Purger(db=db, settings=settings, fence=leadership.fence),
                    RevertWorker(verbosity),
                    drift,
                ]
            )
            self._services = Services(db, jobs, verbosity, drift, background, leadership, signals)
            role = replicas.LEADER if isinstance(leadership, SoleLeader) else replicas.FOLLOWER
            await run_in_threadpool(self._register, role, newer)
            stack.push_async_callback(self._stop_leading)
            if isinstance(leadership, SoleLeader):
                # The only process: it leads from the start, as clusterm always did.
                leadership.take()
                await run_in_threadpool(jobs.recover)
                await background.start()
            else:
                leadership.start(asyncio.get_running_loop())
                await leadership.first_round()
            if self.demo:
                await run_in_threadpool(start_demo, db=db, jobs=jobs, settings=settings)
            log.info(
                "clusterm ready as replica %s (%s); data dir %s",
                self.identity.replica_id,
                self.identity.advertise_url,
                settings.data_dir,
            )
            yield self
        log.info("clusterm stopped")

    def _owner(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "host": self.identity.hostname,
            "serving": self.identity.advertise_url,
            "started": utcnow().isoformat(timespec="seconds"),
        }

    def _register(self, role: str, note: str | None) -> None:
        with self.db.write() as session:
            replicas.register(session, me=self.identity, role=role, note=note)

    async def _gain(self, change: Change) -> None:
        """This replica took the lead: end what the last leader left running, say so on the
        timeline, then run the background work (reverts due meanwhile run first thing)."""
        await run_in_threadpool(self.jobs.recover)
        if change.previous is not None:
            # The first lead a database sees is no change of hands: nothing to tell.
            await run_in_threadpool(self._record_change, change)
        if self.leadership.is_leader and self.leadership.epoch == change.epoch:
            await self.background.start()  # not for a lead lost meanwhile

    def _record_change(self, change: Change) -> None:
        with self.db.write() as session:
            self.leadership.fence(session)
            timeline.record_event(
                session=session,
                action="cluster",
                reason="LeaderChanged",
                result=Result.SUCCEEDED,
                severity=Severity.WARNING if change.previous else Severity.INFO,
                actor=self.identity.replica_id,
                note=f"{self.identity.replica_id} leads now (epoch {change.epoch}): {change.why}",
                details={
                    "replica": self.identity.replica_id,
                    "advertise_url": self.identity.advertise_url,
                    "previous": change.previous,
                    "epoch": change.epoch,
                    "why": change.why,
                },
            )

    async def _lose(self, reason: str) -> None:
        await self.background.stop()
        log.warning("background work stopped after losing the lead (%s)", reason)

    async def _stop_leading(self) -> None:
        """A graceful stop: the background work ends (its last writes still fenced by a lead
        held), then the lead is let go at once, so another replica need not wait out a lease."""
        self.jobs.refuse_work()
        leadership = self.leadership
        if isinstance(leadership, LeaseLeadership):
            await leadership.quiesce()
        await self.background.stop()
        if isinstance(leadership, LeaseLeadership):
            await run_in_threadpool(leadership.release)
        else:
            leadership.let_go()
        try:
            await run_in_threadpool(self._mark_stopped)
        except Exception as exc:
            log.warning("could not mark this replica stopped: %s", exc)

    def _mark_stopped(self) -> None:
        with self.db.write() as session:
            replicas.mark_stopped(session, replica_id=self.identity.replica_id)


def _schema_check(session: Session) -> str | None:
    """Why this replica may not lead: the database was migrated past what it knows."""
    newer = unknown_revisions(session.connection())
    if not newer:
        return None
    return (
        f"the database is at migration {','.join(sorted(newer))}, newer than this replica "
        f"knows ({','.join(sorted(head_revisions()))}): it serves reads but never leads; "
        "upgrade it (README: Rolling upgrade)"
    )


def open_database(settings: Settings) -> tuple[Database, str | None]:
    """The daemon's database, migrated (once for all replicas, under a lock), with the bootstrap
    token and the timeline's listeners; and why this replica may not lead, if it may not."""
    url = settings.effective_database_url
    # Here as well as in `clusterm serve`: tests and uvicorn users build the app directly.
    files.prepare_data_dir(settings.data_dir, url)
    with migration_lock(url):
        engine = create_db_engine(url)
        try:
            newer = unknown_revisions(engine)
        finally:
            engine.dispose()
        if not newer:
            upgrade(url)
        db = timeline.attach(Database(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms))
        try:
            # Under the lock: replicas starting together on a new database make one token.
            auth.ensure_bootstrap_token(db=db, token_file=settings.admin_token_file)
        except BaseException:
            db.dispose()
            raise
    if not newer:
        return db, None
    with db.read() as session:
        reason = _schema_check(session)
    log.error("%s", reason)
    return db, reason


def runtime_of(app: object) -> Runtime:
    """The runtime of an app made by `app.main.create_app` (a route's `request.app`, a test
    client's `client.app`)."""
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    if not isinstance(runtime, Runtime):
        raise NotRunning("the app was not made by app.main.create_app")
    return runtime
