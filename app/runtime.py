"""The runtime: the app's services in one typed container, started and stopped in one order.

Start-up, each step undone in reverse if a later one fails (an `AsyncExitStack`):
1. the database: the data dir, the migrations, the bootstrap token, the timeline's listeners;
2. the jobs a dead daemon left running are marked interrupted (`JobManager.recover`);
3. the Ansible forkserver, and the verbosity clients;
4. the background group, in this order: the job worker (accepts jobs from here on), the
   timeline retention, the verbosity revert worker (reverts due while clusterm was down run
   first thing), the drift watch.

Stop, the reverse:
a. every component of the group stops accepting work at once: a job or a drift check asked
   for from here on is refused with 503 `Unavailable` (nothing started, nothing written);
b. the producers stop, each waited for: the drift watch (with a check in flight in its
   thread, which could otherwise queue a re-join), the revert worker, the retention purger;
c. the active job drains: it is cancelled, ends as interrupted, and its nodes are settled;
d. the verbosity clients close, then the database is disposed; any use of it after that
   raises `DatabaseClosed`.

The background group (`Runtime.background`) can also be stopped and started again while the
daemon runs, any number of times: a daemon that is not the one doing the background work
refuses jobs and drift checks and runs no reverts and no retention.

Routes reach the services through the typed dependencies of `app.deps` (`JobsDep`, ...).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from app import files
from app.ansible import process
from app.auth import service as auth
from app.auth.refusals import RefusalLog
from app.config import Settings
from app.db import Database, upgrade
from app.demo import start_demo
from app.drift.watch import DriftWatch
from app.followers import Followers
from app.jobs.worker import JobManager
from app.timeline import service as timeline
from app.timeline.retention import Purger
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


class NotRunning(RuntimeError):
    pass


class Runtime:
    """The app's services. The request-scoped ones (settings, token cache, refusal log, live
    streams) exist from the start; the rest from `run()` on."""

    def __init__(self, settings: Settings, *, demo: bool = False) -> None:
        self.settings = settings
        self.demo = demo
        self.token_cache = auth.TokenCache()
        self.refusals = RefusalLog()  # how often a refused request is recorded
        self.followers = Followers(settings.max_stream_followers)  # open live streams
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

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Runtime]:
        """Start everything in the order of the module docstring; stop it in reverse."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            db = await run_in_threadpool(open_database, settings)
            stack.callback(db.dispose)
            jobs = JobManager(db=db, settings=settings)
            await run_in_threadpool(jobs.recover)
            await run_in_threadpool(process.start_forkserver)
            verbosity = Verbosity.create(db=db, settings=settings)
            stack.push_async_callback(verbosity.close)
            drift = DriftWatch(db=db, settings=settings, jobs=jobs)
            background = BackgroundGroup(
                [
                    jobs,
                    Purger(db=db, settings=settings),
                    RevertWorker(verbosity),
                    drift,
                ]
            )
            self._services = Services(db, jobs, verbosity, drift, background)
            await background.start()
            stack.push_async_callback(background.stop)
            if self.demo:
                await run_in_threadpool(start_demo, db=db, jobs=jobs, settings=settings)
            log.info("clusterm ready; data dir %s", settings.data_dir)
            yield self
        log.info("clusterm stopped")


def open_database(settings: Settings) -> Database:
    """The daemon's database, migrated, with the bootstrap token and the timeline listeners."""
    url = settings.effective_database_url
    # Here as well as in `clusterm serve`: tests and uvicorn users build the app directly.
    files.prepare_data_dir(settings.data_dir, url)
    upgrade(url)
    db = timeline.attach(Database(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms))
    try:
        auth.ensure_bootstrap_token(db=db, token_file=settings.admin_token_file)
    except BaseException:
        db.dispose()
        raise
    return db


def runtime_of(app: object) -> Runtime:
    """The runtime of an app made by `app.main.create_app` (a route's `request.app`, a test
    client's `client.app`)."""
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    if not isinstance(runtime, Runtime):
        raise NotRunning("the app was not made by app.main.create_app")
    return runtime
