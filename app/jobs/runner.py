"""The job runner: the leader's background component that runs the queued jobs, one at a time.

Any replica accepts a job (a queued row) and signals JOBS; the leader's runner wakes (or looks
every second anyway), claims the oldest queued job in a fenced transaction (queued -> running,
under its replica id and lead epoch) and runs it in its own thread (app.jobs.execution). Only a
claimed job runs, and a job is claimed once: one nobody claimed stays queued for the next leader.

While the job runs, a flusher stores its log every half second (app.jobs.logstore), and each of
those fenced batches also reads the row: a cancel asked on any replica is seen there. A fence
that fails (the lead was lost) stops the job at once; the row is left to the next leader, whose
`recover` ends it as interrupted. `kill_now` is the lead's own alarm: it kills the playbook
before the lease can pass to another replica, without touching the database.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import anyio.to_thread

from app.ansible import leftovers
from app.cluster.leadership import Leadership, LeadLost
from app.cluster.signals import JOBS, Signals
from app.config import Settings
from app.db import Database
from app.jobs import ending, logstore
from app.jobs.execution import Execution, JobRun

log = logging.getLogger("clusterm.jobs")

POLL_S = 1.0  # how often the runner looks for a queued job when no signal comes
DRAIN_WARN_S = 10.0


class JobRunner:
    name = "job runner"

    def __init__(
        self, *, db: Database, settings: Settings, leadership: Leadership, signals: Signals
    ) -> None:
        self.db, self.settings, self.leadership = db, settings, leadership
        self.jobs_dir = settings.data_dir / "jobs"
        self.execution = Execution(
            db=db, settings=settings, leadership=leadership, jobs_dir=self.jobs_dir
        )
        self._wake = threading.Event()
        # Jobs are claimed only between start() and stop() (see app.runtime).
        self._accepting = False
        self._thread: threading.Thread | None = None
        self._run: JobRun | None = None
        signals.subscribe(JOBS, self._on_signal)

    def job_dir(self, job_id: int) -> Path:
        return self.execution.job_dir(job_id)

    @property
    def running(self) -> JobRun | None:
        """The job this replica drives now, if any."""
        return self._run

    def _on_signal(self, _payload: str) -> None:
        # A signal only says "look again": at the queue, and at the running job's row.
        self._wake.set()
        run = self._run
        if run is not None:
            run.wake.set()

    # --- start-up and shut-down ------------------------------------------------------------------

    async def start(self) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.execution.stopping = False
        self._accepting = True
        self._wake.set()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
        self._thread.start()

    def refuse_work(self) -> None:
        self._accepting = False
        self._wake.set()

    async def stop(self) -> None:
        """Claim no more, cancel the running job (it ends as interrupted, its nodes settled) and
        wait for its thread: nothing of it may use the database after this."""
        self.refuse_work()
        await anyio.to_thread.run_sync(self._drain)

    def _drain(self) -> None:
        self.execution.stopping = True  # the running playbook is cancelled at its next look
        thread, self._thread = self._thread, None
        if thread is None:
            return
        # Cancelling kills the playbook at once; a wait longer than this is worth a line in
        # the log, but the database must outlive the thread, so the wait goes on.
        thread.join(DRAIN_WARN_S)
        while thread.is_alive():
            log.warning("still waiting for %s to end after its cancel", thread.name)
            thread.join(DRAIN_WARN_S)

    def kill_now(self) -> None:
        """The lead is being lost: kill the running playbook now, from any thread, without the
        database (which may be what failed). Its row is left for the next leader."""
        run = self._run
        if run is not None:
            self.execution.lose(run)

    def recover(self) -> None:
        """On gaining the lead (and at start-up on SQLite): end as interrupted every job another
        leader (or this process, before it died) took and no longer drives; close its log with
        what reached the database and a line saying why; kill what it left running here."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        running = self._run
        # A job this runner still drives is its own; one it stopped driving (a lead lost) is not.
        driving = running.row.id if running is not None and not running.lead_lost else None
        with self.db.read() as session:
            found = ending.abandoned_jobs(session=session, exclude=driving)
        killed = {
            job.id: sum(leftovers.kill_leftovers(d) for d in self.job_dir(job.id).glob("*/"))
            for job in found
        }
        with self.db.write() as session:
            self.leadership.fence(session)
            ended = ending.interrupt_abandoned(session=session, exclude=driving)
            for job in ended:
                count = killed.get(job.id, 0)
                closing = [
                    "",
                    f"[clusterm: job {job.id} interrupted: {ending.interruption(job)}]",
                    *([f"[clusterm: killed {count} leftover processes]"] if count else []),
                ]
                logstore.close_stored(session=session, job_id=job.id, lines=closing)
        for job in ended:
            log.warning(
                "job %s was left %s by %s; marked interrupted",
                job.id,
                job.kind,
                job.leader or "a previous run",
            )

    # --- the runner's thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._wake.wait(POLL_S)
            self._wake.clear()
            if not self._accepting:
                return
            try:
                run = self.execution.claim()
            except LeadLost:
                continue  # not (or no longer) the leader: the runtime stops this runner
            except Exception:
                log.exception("could not look for a queued job")
                continue
            if run is None:
                continue
            # Seen by kill_now from here on: a lead lost right after the claim stops this job.
            self._run = run
            try:
                shutil.rmtree(self.job_dir(run.row.id), ignore_errors=True)  # a stale dir only
                if not self.leadership.is_leader:
                    self.execution.lose(run)  # lost since the claim: the next leader ends it
                self.execution.execute(run)
            finally:
                self._run = None
            self._prune()
            self._wake.set()  # another job may be queued already

    def _prune(self) -> None:
        """Keep the directories and the stored logs of the newest jobs only: the disk and the
        database stay bounded (each log is at most job_log_cap_bytes)."""
        kept = self.settings.job_dirs_kept
        try:
            ids = sorted(int(p.name) for p in self.jobs_dir.iterdir() if p.name.isdigit())
        except OSError:
            ids = []
        for job_id in ids[:-kept]:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        try:
            with self.db.write() as session:
                self.leadership.fence(session)
                logstore.drop_old_logs(session=session, kept=kept)
        except Exception as exc:
            log.warning("could not drop the logs of old jobs (next job's end retries): %s", exc)
