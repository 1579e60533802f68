"""The jobs as every replica sees them: accept, cancel, and serve the active and the last job.

Any replica accepts a job (`service.accept_job`, one transaction) and signals JOBS; the leader's
runner (`JobManager.runner`, app.jobs.runner) claims and runs it. A cancel asked on any replica
is a column of the job's row, which the runner reads. What `GET /info/job/active|last` serve
comes from the database on every replica alike, the leader too: which job is active or last,
its row and its log (app.jobs.logstore), so a client may move between replicas and read the same
lines under the same numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from sqlalchemy.orm import Session

from app.ansible import inventory
from app.ansible import tags as ansible_tags
from app.cluster.leadership import Leadership
from app.cluster.signals import JOBS, Signals
from app.config import Settings
from app.db import Database
from app.errors import Gone, Misconfigured, Unavailable
from app.jobs import logstore
from app.jobs import service as jobs
from app.jobs.execution import playbook_path
from app.jobs.logstore import LogCache, StoredJob, snapshot
from app.jobs.models import Job
from app.jobs.runner import JobRunner
from app.jobs.vocabulary import ACTIVE_STATUSES, Kind
from app.nodes.vocabulary import HostGroup

log = logging.getLogger("clusterm.jobs")

CANCEL_POLL_S = 0.1


class JobManager:
    def __init__(
        self, *, db: Database, settings: Settings, leadership: Leadership, signals: Signals
    ) -> None:
        self.db = db
        self.settings = settings
        self.signals = signals
        # The leader's part: a background component (app.runtime runs it while this replica leads).
        self.runner = JobRunner(db=db, settings=settings, leadership=leadership, signals=signals)
        self.logs = LogCache(cap_bytes=settings.job_log_cap_bytes)
        # Jobs are accepted until this replica begins to stop.
        self._accepting = True

    # --- the replica's life, and the lead's ------------------------------------------------------

    def refuse_work(self) -> None:
        """This replica is stopping: refuse jobs from now on (never blocks)."""
        self._accepting = False

    def kill_now(self) -> None:
        self.runner.kill_now()

    def recover(self) -> None:
        self.runner.recover()

    def _refused(self) -> Unavailable:
        return Unavailable(
            "clusterm is stopping and takes no new job; send the request again once it is back",
            retry_after_s=5,
        )

    # --- requests --------------------------------------------------------------------------------

    @property
    def active(self) -> Job | None:
        """The job queued or running, as the database says (one query)."""
        with self.db.read() as session:
            return jobs.active_job(session=session)

    def submit(
        self,
        *,
        kind: Kind,
        names: list[str],
        host_group: HostGroup | None,
        extra_vars: dict[str, Any],
        actor: str,
        addresses: list[inventory.Address] | None = None,
        fence: Callable[[Session], None] | None = None,
        cleanup: bool = True,
        check: bool = False,
        tags: Sequence[str] = (),
        skip_tags: Sequence[str] = (),
        maintenance: dict[str, bool] | None = None,
    ) -> Job:
        """Accept a job (every check done before it exists); the leader runs it. `fence`: the
        leader's own job (a drift re-join), refused in its transaction when the lead is gone.
        `cleanup`: a commission runs the cleanup playbook on the nodes it leaves failed.
        `check`: --check --diff, no node moved; `tags`, `skip_tags`: declared tags of the
        kind's playbook (app.ansible.tags), else a 422. `maintenance`: a maintenance job's
        `enabled` and `drain`, which become its playbook's clusterm_maintenance vars."""
        if not self._accepting:
            raise self._refused()
        playbook = playbook_path(self.settings, kind)
        if not playbook.is_file():
            raise Misconfigured(
                f"the {kind} playbook {playbook} does not exist: fix the setting "
                f"{kind}_playbook or playbook_dir",
                setting=f"{kind}_playbook",
            )
        # Read from the playbook's files (cached): before the transaction, which it never needs.
        ansible_tags.check_tags(playbook=playbook, kind=kind, tags=tags, skip_tags=skip_tags)
        inputs = {
            "extra_vars": extra_vars,
            "addresses": [dataclasses.asdict(a) for a in addresses or []],
            "cleanup": cleanup,
            **({"maintenance": dict(maintenance)} if maintenance is not None else {}),
        }
        with self.db.write() as session:
            if not self._accepting:
                raise self._refused()
            if fence is not None:
                fence(session)
            job = jobs.accept_job(
                session=session,
                kind=kind,
                names=names,
                host_group=host_group,
                actor=actor,
                extra_var_names=list(extra_vars),
                inputs=inputs,
                check=check,
                tags=list(tags),
                skip_tags=list(skip_tags),
            )
            self.signals.publish(JOBS, session=session)
        return job

    def cancel(self, *, actor: str, wait_s: float = 5.0) -> Job:
        """Cancel the active job and wait (briefly) until it has ended, or until its cleanup
        has started (the row's cancel is then cleared: a new cancel stops the cleanup)."""
        with self.db.write() as session:
            job = jobs.request_cancel(session=session, actor=actor)
            self.signals.publish(JOBS, session=session)
        deadline = time.monotonic() + wait_s
        while True:
            with self.db.read() as session:
                job = jobs.get_job(session=session, job_id=job.id)
            if job.status not in ACTIVE_STATUSES or job.cancel_requested_by is None:
                return job
            if time.monotonic() >= deadline:
                return job
            time.sleep(CANCEL_POLL_S)

    # --- what the log routes serve ---------------------------------------------------------------

    def stored(self, which: Literal["active", "last"]) -> StoredJob | None:
        """The active or the last finished job with its log, up to date; None when none is."""
        with self.db.read() as session:
            snapshot(session)
            if which == "active":
                row = jobs.active_job(session=session)
            else:
                row = jobs.last_finished_job(session=session)
            return None if row is None else self.logs.get(session=session, row=row)

    def stored_job(self, job_id: int) -> StoredJob:
        """Any job with its log, up to date: NotFound for a job that never was, Gone for one
        whose log was dropped with those of older jobs."""
        with self.db.read() as session:
            snapshot(session)
            row = jobs.get_job(session=session, job_id=job_id)
            # A job has a stored log from its claim on; one that ended without any lost it to
            # the retention of the newest job_dirs_kept logs (logstore.drop_old_logs).
            if row.status not in ACTIVE_STATUSES and not logstore.has_log(
                session=session, job_id=job_id
            ):
                kept = self.settings.job_dirs_kept
                raise Gone(
                    f"job {job_id} ended, and its log is no longer kept: clusterm keeps the logs "
                    f"of the newest {kept} jobs (setting job_dirs_kept); the job itself is at "
                    f"GET /jobs/{job_id}",
                    job_id=job_id,
                    setting="job_dirs_kept",
                )
            return self.logs.get(session=session, row=row)
