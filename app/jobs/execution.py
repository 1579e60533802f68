"""One job's run on the leader: claimed, run in a child process, its log stored as it grows, ended.

The job's thread runs Ansible (app.ansible.process) and feeds its output to an in-memory log
buffer; a flusher thread stores that buffer every `FLUSH_S` (app.jobs.logstore) in a fenced
transaction that also reads the row (a cancel asked on any replica). Ansible's output callback
never waits for the database.

Order at the end of a job, so that no reader sees "finished" with lines still to come: the
flusher stops, the log is closed (its last line says how the job ended), then its last lines,
`complete` and the job's end are written in one fenced transaction.

A commission that leaves nodes failed (it failed, was cancelled or timed out) runs the cleanup
playbook on them, unless its request said `cleanup: false`. A cancel stops the main playbook and
is then forgotten (the row's `cancel_requested_by` cleared), so that the cleanup runs, and a new
cancel stops the cleanup. A daemon that stops or loses the lead runs no cleanup: the job ends
interrupted, its nodes failed, for an operator to clean up (`POST /cleanup/nodes`).

An update or decommission that failed names, in its error, the nodes its recap does not list (a
rollout that stopped before their batch: app.jobs.ending.not_touched); they go back to their
state before the job.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.ansible import inventory, leftovers, process
from app.ansible.env import ansible_env
from app.ansible.logbuffer import LogBuffer
from app.ansible.spec import Priority, RunResult, RunSpec, RunStatus
from app.cluster import known_hosts
from app.cluster.leadership import Leadership, LeadLost
from app.config import Settings
from app.db import Database
from app.jobs import ending, logstore, results, variables
from app.jobs import service as jobs
from app.jobs.joins import JoinRecorder
from app.jobs.models import Job
from app.jobs.vocabulary import Kind, Status
from app.nodes import service as nodes

log = logging.getLogger("clusterm.jobs")

FLUSH_S = 0.5  # the log reaches the database at least this often while a job prints
FINISH_ATTEMPTS = 3  # when stopping: then the row is left to the next start or leader
FINISH_RETRY_MAX_S = 10.0
CHECK_MARKER = (
    "[clusterm: check mode (ansible-playbook --check --diff): nothing is changed on the nodes "
    "and no node changes state; each task's 'changed' says it would change something]"
)
CLEANUP_MARKER = "==== clusterm: cleanup of the failed hosts ({hosts}) with {playbook} ===="


@dataclass
class JobRun:
    """A job the leader drives: its row as claimed, its log, and what stops it."""

    row: Job
    log: LogBuffer
    writer: logstore.LogWriter
    extra_vars: dict[str, Any]
    inventory: dict[str, Any] | None  # None: it could not be built (`error` says why)
    results: results.ResultsRecorder  # per host and task, stored with the log's batches
    error: str | None = None
    cut_tasks: dict[str, str] = field(default_factory=dict)  # per host, the task a stop cut
    cleanup: bool = True  # a commission cleans up the nodes it leaves failed
    cancel_requested_by: str | None = None
    canceled_by: str | None = None  # who cancelled the main playbook (before its cleanup)
    lead_lost: bool = False  # the lead went: stop at once, write nothing more
    wake: threading.Event = field(default_factory=threading.Event)  # look at the row now
    running: threading.Event = field(default_factory=threading.Event)  # the flusher's to go on


def playbook_path(settings: Settings, kind: Kind) -> Path:
    """The playbook of a kind of job; absolute, as ansible-playbook runs in the job's private
    data dir, not in ours."""
    name: str = getattr(settings, f"{kind}_playbook")
    return (settings.playbook_dir / name).absolute()


class Execution:
    """Claims and runs jobs for the runner (app.jobs.runner), one at a time."""

    def __init__(
        self, *, db: Database, settings: Settings, leadership: Leadership, jobs_dir: Path
    ) -> None:
        self.db, self.settings, self.leadership = db, settings, leadership
        self.jobs_dir = jobs_dir
        self.stopping = False  # the runner is stopping: the job ends as interrupted

    def claim(self) -> JobRun | None:
        """Take the oldest queued job, fenced; LeadLost when this replica does not lead."""
        cap = self.settings.job_log_cap_bytes
        with self.db.write() as session:
            self.leadership.fence(session)
            claimed = jobs.claim_next_job(
                session=session, leader=self.leadership.replica_id, epoch=self.leadership.epoch
            )
            if claimed is None:
                return None
            row, targets = claimed
            logstore.create_log(session=session, job_id=row.id)
            inputs = row.inputs or {}
            merged = variables.merge_extra_vars(
                settings_vars=self.settings.extra_vars,
                global_vars=variables.get_globals(session=session).extra_vars,
                request_vars=inputs.get("extra_vars") or {},
                job=row,
            )
            inv, error = None, None
            try:
                if row.kind == Kind.DISCOVER:
                    addresses = [inventory.Address(**a) for a in inputs.get("addresses") or []]
                    inv = inventory.address_inventory(addresses)
                else:
                    hosts = [nodes.ansible_host(n) for n in targets.nodes]
                    if row.check and row.kind == Kind.COMMISSION and row.host_group is not None:
                        # A check moved no node, so none holds the group it asked for: its run
                        # sees them in that group all the same, as the real commission would.
                        group = str(row.host_group)
                        hosts = [dataclasses.replace(h, host_group=group) for h in hosts]
                    inv = inventory.node_inventory(
                        targets=hosts,
                        cluster_masters=[nodes.ansible_host(n) for n in targets.cluster_masters],
                    )
            except Exception as exc:
                log.exception("job %s: could not build its inventory", row.id)
                error = f"clusterm could not run the job: {type(exc).__name__}: {exc}"
        buffer = LogBuffer(cap_bytes=cap)
        writer = logstore.LogWriter(
            db=self.db, leadership=self.leadership, job_id=row.id, buffer=buffer
        )
        return JobRun(
            row=row,
            log=buffer,
            writer=writer,
            extra_vars=merged,
            inventory=inv,
            # A check job's result is what its tasks would change: it records every task, whatever
            # the setting job_task_results.
            results=results.ResultsRecorder(
                job_id=row.id, all_tasks=self.settings.job_task_results or row.check
            ),
            error=error,
            cleanup=inputs.get("cleanup", True) is not False,
            cancel_requested_by=row.cancel_requested_by,
        )

    def job_dir(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id)

    def _stopped(self, run: JobRun) -> bool:
        return run.cancel_requested_by is not None or run.lead_lost or self.stopping

    # --- the job's thread ------------------------------------------------------------------------

    def execute(self, run: JobRun) -> None:
        job_id = run.row.id
        status, rc, hosts, error = Status.FAILED, None, {}, run.error
        cleanup: RunResult | None = None
        ran = False  # the main playbook started: nodes it never reached are told by its recap
        started = time.monotonic()
        run.running.set()
        flusher = threading.Thread(
            target=self._flush_loop, args=(run,), name=f"job-{job_id}-log", daemon=True
        )
        flusher.start()
        try:
            if run.inventory is not None and self._stopped(run):
                status = Status.CANCELED  # asked before it ran: it never starts
                run.canceled_by = run.cancel_requested_by
            elif run.inventory is not None:
                if run.row.check:
                    run.log.append_lines([CHECK_MARKER])
                ran = True
                result = self._run(
                    run, playbook_path(self.settings, run.row.kind), run.inventory, "main"
                )
                status, rc, hosts = Status(result.status.value), result.rc, result.hosts
                error, run.cut_tasks = result.error, result.running
                if status == Status.CANCELED:
                    run.canceled_by = run.cancel_requested_by
                # A check changed nothing: there is nothing to clean up.
                if (
                    run.row.kind == Kind.COMMISSION
                    and run.cleanup
                    and not run.row.check
                    and status != Status.SUCCESSFUL
                ):
                    cleanup = self._cleanup(run, run.inventory, hosts, status)
        except Exception as exc:
            log.exception("job %s could not run", job_id)
            error = f"clusterm could not run the job: {type(exc).__name__}: {exc}"
        run.running.clear()
        run.wake.set()
        flusher.join()
        if run.lead_lost:
            log.error("job %s: the lead was lost; the next leader ends it", job_id)
            return
        if status == Status.CANCELED and self.stopping and run.canceled_by is None:
            status = Status.INTERRUPTED
        error = error or self._explain(run, status, rc, hosts)
        untouched = ending.not_touched(run.row, status=status, hosts=hosts, ran=ran)
        if untouched:
            if not ran and status == Status.INTERRUPTED:
                error = "clusterm was stopped before the job's playbook started"
            error = f"{error or status}; {ending.untouched_text(untouched, ran=ran)}"
        if cleanup is not None and cleanup.status != RunStatus.SUCCESSFUL:
            # The nodes are failed either way; whether they were cleaned up is worth saying.
            by = f" by {run.cancel_requested_by}" if cleanup.status == RunStatus.CANCELED else ""
            error = f"{error or 'failed'}; its cleanup {cleanup.status}{by}"
        elapsed = time.monotonic() - started
        summary = f"[clusterm: job {job_id} {status}"
        summary += " in check mode" if run.row.check else ""
        summary += f" (rc {rc})" if rc is not None else ""
        summary += f" after {elapsed:.1f} s" + (f": {error}]" if error else "]")
        run.log.close(["", summary])
        self._finish(run, status=status, rc=rc, hosts=hosts, error=error, untouched=untouched)

    def _flush_loop(self, run: JobRun) -> None:
        while run.running.is_set() and not run.lead_lost:
            run.wake.wait(FLUSH_S)
            run.wake.clear()
            if not run.running.is_set() or run.lead_lost:
                return
            batch = None

            def then(session: Session) -> None:
                nonlocal batch
                batch = run.results.store(session)  # in the log's batch: one transaction
                self._look_for_cancel(session, run)

            try:
                run.writer.flush(then)
            except LeadLost:
                self.lose(run)
                return
            except Exception as exc:
                # The next batch stores these lines too (or the tail drops them, as it would).
                log.warning("job %s: could not store its log now: %s", run.row.id, exc)
                if batch is not None:
                    run.results.unstored(batch)
                continue
            if batch is not None:
                run.results.stored(batch)

    @staticmethod
    def _look_for_cancel(session: Session, run: JobRun) -> None:
        # In the writer's batch, under its lock, as is `_rearm_cancel`: a look that read the
        # row before the cancel was cleared can never land after it and stop the cleanup.
        asked = session.scalar(sa.select(Job.cancel_requested_by).where(Job.id == run.row.id))
        if asked is not None and run.cancel_requested_by is None:
            run.cancel_requested_by = asked

    def _rearm_cancel(self, run: JobRun) -> bool:
        """Forget the cancel that stopped the main playbook (here and in the row), so that the
        cleanup runs and a new cancel stops it; False when it could not be forgotten."""
        asked = run.cancel_requested_by

        def forget(session: Session) -> None:
            jobs.rearm_cancel(session=session, job_id=run.row.id)
            run.cancel_requested_by = None

        try:
            run.writer.flush(forget)
        except LeadLost:
            self.lose(run)
            return False
        except Exception as exc:
            log.warning("job %s: could not clear its cancel, so no cleanup: %s", run.row.id, exc)
            run.cancel_requested_by = asked
            return False
        return True

    def lose(self, run: JobRun) -> None:
        """The lead is gone: stop driving `run` now (no database needed), kill what it runs."""
        run.lead_lost = True
        run.wake.set()
        for run_dir in self.job_dir(run.row.id).glob("*/"):
            leftovers.kill_leftovers(run_dir)

    def _run(self, run: JobRun, playbook: Path, inv: dict[str, Any], name: str) -> RunResult:
        run_dir = self.job_dir(run.row.id) / name
        inv_path = inventory.write_inventory(run_dir / "inventory" / "hosts.yml", inv)
        extra_vars = run.extra_vars
        if name == "cleanup":
            extra_vars = {**extra_vars, "clusterm_job_kind": "cleanup"}
        run.results.run = name
        # Join attempts reach the timeline while the job runs (app.jobs.joins); the host keys
        # every replica trusts are the database's (app.cluster.known_hosts).
        try:
            with (
                known_hosts.shared(self.db, self.settings.known_hosts_file),
                JoinRecorder(db=self.db, job=run.row) as joins,
            ):
                spec = RunSpec(
                    private_data_dir=run_dir,
                    playbook=playbook,
                    inventory=inv_path,
                    extra_vars=extra_vars,
                    env=ansible_env(self.settings),
                    timeout_s=self.settings.job_timeout_s,
                    wants_reports=True,
                    all_task_results=self.settings.job_task_results or run.row.check,
                    # The request's tags are the job's playbook's: the cleanup runs whole.
                    check=run.row.check,
                    tags=tuple(run.row.tags or ()) if name == "main" else (),
                    skip_tags=tuple(run.row.skip_tags or ()) if name == "main" else (),
                    priority=Priority(self.settings.job_priority),
                )
                return process.run_playbook(
                    spec,
                    on_output=run.log.append_text,
                    should_cancel=lambda: self._stopped(run),
                    on_report=joins.report,
                    on_tasks=run.results.add,
                )
        finally:
            # Whatever ended the run, nothing of it may go on running (see kill_leftovers).
            leftovers.kill_leftovers(run_dir)

    def _cleanup(
        self, run: JobRun, inv: dict[str, Any], hosts: dict[str, dict[str, int]], status: Status
    ) -> RunResult | None:
        """The cleanup playbook on the hosts the job leaves failed; None when it did not run."""
        failed = [n for n in run.row.nodes if not ending.host_succeeded(hosts, n, status=status)]
        if not failed or run.lead_lost or self.stopping:
            return None
        if run.cancel_requested_by is not None and not self._rearm_cancel(run):
            return None
        playbook = (self.settings.playbook_dir / self.settings.cleanup_playbook).absolute()
        run.log.append_lines(
            ["", CLEANUP_MARKER.format(hosts=", ".join(failed), playbook=playbook)]
        )
        if not playbook.is_file():
            run.log.append_lines([f"[clusterm: no cleanup: {playbook} does not exist]"])
            return None
        children = inv["all"]["children"]
        for group in children.values():
            group["hosts"] = {
                h: None for h in group["hosts"] if h in failed or h not in run.row.nodes
            }
        children["targets"]["hosts"] = dict.fromkeys(failed)
        result = self._run(run, playbook, inv, "cleanup")
        run.log.append_lines([f"[clusterm: cleanup {result.status} (rc {result.rc})]"])
        return result

    def _explain(
        self, run: JobRun, status: Status, rc: int | None, hosts: dict[str, dict[str, int]]
    ) -> str | None:
        if status == Status.SUCCESSFUL:
            return None
        if status == Status.INTERRUPTED and run.row.check:
            return "clusterm was stopped while the check job was running; no node was moved"
        if status == Status.INTERRUPTED and run.row.kind == Kind.MAINTENANCE:
            return "clusterm was stopped while the job was running; its node stays where it was"
        if status == Status.INTERRUPTED:
            return "clusterm was stopped while the job was running; its nodes were marked failed"
        if status == Status.CANCELED:
            return f"canceled by {run.canceled_by or run.cancel_requested_by}"
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
        untouched: list[str] | None = None,
    ) -> None:
        """The log's last lines and the job's end, in one fenced transaction.

        Tried again and again while this replica leads and runs: the job holds the active slot
        until its end is written, and no other job can start meanwhile. When the replica stops
        (or the lead is lost) the row is left running, and the next start (or the next leader)
        ends it as interrupted."""
        attempt = 0
        failures = run.results.failures(
            status=status, hosts=hosts, running=run.cut_tasks, names=run.row.nodes
        )
        while True:
            batch = None

            def then(session: Session) -> Job:
                nonlocal batch
                batch = run.results.finish(session, hosts)
                return ending.finish_job(
                    session=session,
                    job_id=run.row.id,
                    status=status,
                    rc=rc,
                    hosts=hosts,
                    error=error,
                    failures=failures,
                    untouched=untouched or (),
                )

            try:
                run.row = run.writer.flush(then)
                if batch is not None:
                    run.results.stored(batch)
                return
            except LeadLost:
                log.error("job %s: the lead was lost before its end was written", run.row.id)
                return
            except Exception:
                if batch is not None:
                    run.results.unstored(batch)
                attempt += 1
                log.exception(
                    "could not record the end of job %s (attempt %d)", run.row.id, attempt
                )
                if attempt >= FINISH_ATTEMPTS and (self.stopping or run.lead_lost):
                    return
                time.sleep(min(FINISH_RETRY_MAX_S, 0.5 * 2 ** min(attempt, 6)))
