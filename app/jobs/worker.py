"""The job manager: the one active job and the last one, run in a background thread.

The request thread only accepts (service.accept_job, one transaction) and hands over; the job's
own thread runs Ansible in a child process (app.ansible.process) and feeds its output to the log.
The active and the last job live here, in memory, with their logs: that is what
`GET /info/job/active|last` serve, without the database.

Order at the end of a job, so that no reader sees "finished" with lines still to come: the log is
closed first (its last line says how the job ended), then the row is written, then the in-memory
job turns into the last one.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from app.ansible import inventory, leftovers, process
from app.ansible.env import ansible_env
from app.ansible.logbuffer import LogBuffer
from app.ansible.spec import RunResult, RunSpec
from app.config import Settings
from app.db import Database
from app.errors import JobActive, Misconfigured, NotFound, Unavailable
from app.jobs import service as jobs
from app.jobs.joins import JoinRecorder
from app.jobs.models import Job
from app.jobs.vocabulary import Kind, Status
from app.nodes import service as nodes
from app.nodes.vocabulary import HostGroup
from app.timeline import service as timeline
from app.timeline.vocabulary import Result

log = logging.getLogger("clusterm.jobs")

DRAIN_WARN_S = 10.0
CLEANUP_MARKER = "==== clusterm: cleanup of the failed hosts ({hosts}) with {playbook} ===="


@dataclass
class JobRun:
    """A job the daemon holds in memory: its row (replaced, never mutated) and its log."""

    row: Job
    log: LogBuffer
    extra_vars: dict[str, Any] = field(default_factory=dict)
    addresses: list[inventory.Address] = field(default_factory=list)
    cancel_requested_by: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Whole-log response bodies of a finished job, by (format, color): immutable, so built once.
    bodies: dict[tuple[str, bool], bytes] = field(default_factory=dict)


class JobManager:
    name = "job worker"

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.jobs_dir = settings.data_dir / "jobs"
        self._lock = threading.Lock()
        self._active: JobRun | None = None
        self._last: JobRun | None = None
        self._stopping = False
        # Jobs are taken only between start() and stop() (see app.runtime).
        self._accepting = False
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> JobRun | None:
        return self._active

    @property
    def last(self) -> JobRun | None:
        return self._last

    def job_dir(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id)

    # --- start-up and shut-down ------------------------------------------------------------------

    def recover(self) -> None:
        """At start-up: end what a dead daemon left running, and load the last job's log."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.db.write() as session:
            interrupted = jobs.interrupt_unfinished(session=session)
        for job in interrupted:
            killed = sum(leftovers.kill_leftovers(d) for d in self.job_dir(job.id).glob("*/"))
            buf = self._load_log(job)
            if not buf.complete:
                buf.close(
                    [
                        "",
                        f"[clusterm: job {job.id} interrupted: {job.error}]",
                        *([f"[clusterm: killed {killed} leftover processes]"] if killed else []),
                    ]
                )
            log.warning(
                "job %s was left %s by a previous run; marked interrupted", job.id, job.kind
            )
        with self.db.read() as session:
            last = jobs.last_finished_job(session=session)
        if last is not None:
            self._last = JobRun(row=last, log=self._load_log(last))

    def _load_log(self, job: Job) -> LogBuffer:
        spool = self.job_dir(job.id) / "log"
        if spool.is_dir():
            return LogBuffer.load(spool, cap_bytes=self.settings.job_log_cap_bytes)
        buf = LogBuffer(cap_bytes=self.settings.job_log_cap_bytes)
        buf.close(["[clusterm: this job's log is no longer kept]"])
        return buf

    async def start(self) -> None:
        self._stopping = False
        self._accepting = True

    def refuse_work(self) -> None:
        # No lock: submit checks the flag under the lock and `_drain` takes it, so a job is
        # either started before `_drain` looks or refused.
        self._accepting = False

    async def stop(self) -> None:
        """Refuse jobs, cancel the active one (it ends as interrupted, its nodes settled) and
        wait for its thread: nothing of it may use the database after this."""
        self.refuse_work()
        await anyio.to_thread.run_sync(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._stopping = True
            run, thread = self._active, self._thread
        if run is not None:
            run.cancel_requested_by = run.cancel_requested_by or "clusterm shutdown"
        if thread is None:
            return
        # Cancelling kills the playbook at once; a wait longer than this is worth a line in
        # the log, but the database must outlive the thread, so the wait goes on.
        thread.join(DRAIN_WARN_S)
        while thread.is_alive():
            log.warning("still waiting for %s to end after its cancel", thread.name)
            thread.join(DRAIN_WARN_S)

    def _refused(self) -> Unavailable:
        return Unavailable(
            "clusterm is stopping and takes no new job; send the request again once it is back",
            retry_after_s=5,
        )

    # --- requests --------------------------------------------------------------------------------

    def submit(
        self,
        *,
        kind: Kind,
        names: list[str],
        host_group: HostGroup | None,
        extra_vars: dict[str, Any],
        actor: str,
        addresses: list[inventory.Address] | None = None,
    ) -> Job:
        """Accept a job (every check done before it exists) and start it in the background."""
        if not self._accepting:
            raise self._refused()
        playbook = self._playbook(kind)
        if not playbook.is_file():
            raise Misconfigured(
                f"the {kind} playbook {playbook} does not exist: fix the setting "
                f"{kind}_playbook or playbook_dir",
                setting=f"{kind}_playbook",
            )
        with self._lock:
            if not self._accepting:
                raise self._refused()
            # Checked here too so that a burst of requests is refused without the database.
            current = self._active
            if current is not None:
                raise JobActive(job_id=current.row.id, kind=current.row.kind)
            with self.db.write() as session:
                job = jobs.accept_job(
                    session=session,
                    kind=kind,
                    names=names,
                    host_group=host_group,
                    actor=actor,
                    extra_var_names=list(extra_vars),
                )
                merged = jobs.merge_extra_vars(
                    settings_vars=self.settings.extra_vars,
                    global_vars=jobs.get_globals(session=session).extra_vars,
                    request_vars=extra_vars,
                    job=job,
                )
            # A directory of this id can only be stale (a data dir kept across a new database):
            # its log must not run into this job's.
            shutil.rmtree(self.job_dir(job.id), ignore_errors=True)
            buf = LogBuffer(
                cap_bytes=self.settings.job_log_cap_bytes, spool_dir=self.job_dir(job.id) / "log"
            )
            run = JobRun(row=job, log=buf, extra_vars=merged, addresses=addresses or [])
            self._active = run
            self._thread = threading.Thread(
                target=self._execute, args=(run,), name=f"job-{job.id}", daemon=True
            )
            self._thread.start()
        return job

    def cancel(self, *, actor: str, wait_s: float = 5.0) -> JobRun:
        """Cancel the active job and wait (briefly) until it has ended."""
        run = self._active
        if run is None:
            raise NotFound("no job is active, so there is nothing to cancel")
        if run.cancel_requested_by is None:
            run.cancel_requested_by = actor
            with self.db.write() as session:
                timeline.record_event(
                    session=session,
                    action=run.row.kind,
                    reason="CancelRequested",
                    result=Result.CANCELED,
                    actor=actor,
                    job_id=run.row.id,
                )
        run.done.wait(wait_s)
        return run

    # --- the job's thread ------------------------------------------------------------------------

    def _playbook(self, kind: Kind) -> Path:
        name: str = getattr(self.settings, f"{kind}_playbook")
        # Absolute: ansible-playbook runs in the job's private data dir, not in ours.
        return (self.settings.playbook_dir / name).absolute()

    def _execute(self, run: JobRun) -> None:
        job_id = run.row.id
        status, rc, hosts, error = Status.FAILED, None, {}, None
        started = time.monotonic()
        try:
            with self.db.write() as session:
                row, targets = jobs.start_job(session=session, job_id=job_id)
                if row.kind == Kind.DISCOVER:
                    inv = inventory.address_inventory(run.addresses)
                else:
                    inv = inventory.node_inventory(
                        targets=[nodes.ansible_host(n) for n in targets.nodes],
                        cluster_masters=[nodes.ansible_host(n) for n in targets.cluster_masters],
                    )
            run.row = row
            result = self._run(run, self._playbook(row.kind), inv, "main")
            status, rc, hosts = Status(result.status.value), result.rc, result.hosts
            error = result.error
            if row.kind == Kind.COMMISSION and status == Status.FAILED:
                self._cleanup(run, inv, hosts, status)
        except Exception as exc:
            log.exception("job %s could not run", job_id)
            error = f"clusterm could not run the job: {type(exc).__name__}: {exc}"
        if status == Status.CANCELED and self._stopping:
            status = Status.INTERRUPTED
        error = error or self._explain(run, status, rc, hosts)
        elapsed = time.monotonic() - started
        summary = f"[clusterm: job {job_id} {status}"
        summary += f" (rc {rc})" if rc is not None else ""
        summary += f" after {elapsed:.1f} s" + (f": {error}]" if error else "]")
        run.log.close(["", summary])
        self._finish(run, status=status, rc=rc, hosts=hosts, error=error)

    def _run(self, run: JobRun, playbook: Path, inv: dict[str, Any], name: str) -> RunResult:
        run_dir = self.job_dir(run.row.id) / name
        inv_path = inventory.write_inventory(run_dir / "inventory" / "hosts.yml", inv)
        extra_vars = run.extra_vars
        if name == "cleanup":
            extra_vars = {**extra_vars, "clusterm_job_kind": "cleanup"}
        # Join attempts reach the timeline while the job runs (app.jobs.joins).
        try:
            with JoinRecorder(db=self.db, job=run.row) as joins:
                spec = RunSpec(
                    private_data_dir=run_dir,
                    playbook=playbook,
                    inventory=inv_path,
                    extra_vars=extra_vars,
                    env=ansible_env(self.settings),
                    timeout_s=self.settings.job_timeout_s,
                    wants_reports=True,
                )
                return process.run_playbook(
                    spec,
                    on_output=run.log.append_text,
                    should_cancel=lambda: run.cancel_requested_by is not None,
                    on_report=joins.report,
                )
        finally:
            # Whatever ended the run, nothing of it may go on running (see kill_leftovers).
            leftovers.kill_leftovers(run_dir)

    def _cleanup(
        self, run: JobRun, inv: dict[str, Any], hosts: dict[str, dict[str, int]], status: Status
    ) -> None:
        failed = [n for n in run.row.nodes if not jobs.host_succeeded(hosts, n, status=status)]
        if not failed:
            return
        playbook = (self.settings.playbook_dir / self.settings.cleanup_playbook).absolute()
        run.log.append_lines(
            ["", CLEANUP_MARKER.format(hosts=", ".join(failed), playbook=playbook)]
        )
        if not playbook.is_file():
            run.log.append_lines([f"[clusterm: no cleanup: {playbook} does not exist]"])
            return
        children = inv["all"]["children"]
        for group in children.values():
            group["hosts"] = {
                h: None for h in group["hosts"] if h in failed or h not in run.row.nodes
            }
        children["targets"]["hosts"] = dict.fromkeys(failed)
        result = self._run(run, playbook, inv, "cleanup")
        run.log.append_lines([f"[clusterm: cleanup {result.status} (rc {result.rc})]"])

    def _explain(
        self, run: JobRun, status: Status, rc: int | None, hosts: dict[str, dict[str, int]]
    ) -> str | None:
        if status == Status.SUCCESSFUL:
            return None
        if status == Status.INTERRUPTED:
            return "clusterm was stopped while the job was running; its nodes were marked failed"
        if status == Status.CANCELED:
            return f"canceled by {run.cancel_requested_by}"
        if status == Status.TIMEOUT:
            return (
                f"the job ran longer than job_timeout_s ({self.settings.job_timeout_s} s) "
                "and was stopped"
            )
        bad = [
            f"{h} ({'unreachable' if c.get('unreachable') else 'failed'})"
            for h, c in hosts.items()
            if c.get("failed") or c.get("unreachable")
        ]
        if bad:
            return "hosts failed: " + ", ".join(bad)
        return f"ansible-playbook failed with rc {rc}; the log says why"

    def _finish(
        self,
        run: JobRun,
        *,
        status: Status,
        rc: int | None,
        hosts: dict[str, dict[str, int]],
        error: str | None,
    ) -> None:
        row = None
        for attempt in range(3):
            try:
                with self.db.write() as session:
                    row = jobs.finish_job(
                        session=session,
                        job_id=run.row.id,
                        status=status,
                        rc=rc,
                        hosts=hosts,
                        error=error,
                    )
                break
            except Exception:
                # The row stays active and the next start marks it interrupted; meanwhile the
                # daemon must not refuse jobs forever, so it lets go of this one below.
                log.exception(
                    "could not record the end of job %s (attempt %d)", run.row.id, attempt
                )
                time.sleep(0.5)
        # In this order, so that whoever sees the job finished (its row, at GET /jobs/{id}) also
        # finds it at GET /info/job/last.
        with self._lock:
            self._last = run
            if row is not None:
                run.row = row
            self._active = None
        run.done.set()
        self._prune()

    def _prune(self) -> None:
        """Keep the directories of the newest jobs only: the disk stays bounded too."""
        try:
            ids = sorted(int(p.name) for p in self.jobs_dir.iterdir() if p.name.isdigit())
        except OSError:
            return
        keep = {r.row.id for r in (self._active, self._last) if r is not None}
        for job_id in ids[: -self.settings.job_dirs_kept]:
            if job_id not in keep:
                shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
