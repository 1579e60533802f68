"""The leader's job runner with real jobs: the log reaches the database while the job runs, a cancel
written by another replica stops it, and a lost lead kills the playbook at once. On SQLite and
PostgreSQL; real Ansible (local connection)."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.jobs import service as jobs
from app.jobs.execution import JobRun
from app.jobs.models import Job, JobLogChunk
from app.runtime import runtime_of
from tests.jobs.conftest import (
    job_processes,
    local_node,
    register,
    states,
    wait_finished,
    wait_lines,
    wait_no_processes,
)
from tests.polling import wait_until

FLUSH_BOUND_S = 2.0  # the most a printed line may wait before it is in the database


def running_job(client: TestClient, sleep_s: float) -> tuple[int, JobRun]:
    register(client, local_node("m1", "master"))
    response = client.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": sleep_s}}
    )
    assert response.status_code == 202, response.text
    runner = runtime_of(client.app).jobs.runner
    run = wait_until(lambda: runner.running, timeout_s=30, what="the runner to claim the job")
    return int(response.json()["id"]), run


def test_the_log_reaches_the_database_while_the_job_runs(admin: TestClient) -> None:
    job_id, run = running_job(admin, sleep_s=3)
    db = runtime_of(admin.app).db
    wait_until(
        lambda: any("TASK [Wait]" in line for line in run.log.read().lines),
        timeout_s=30,
        what="the job to print its Wait task",
        interval_s=0.01,
    )
    printed_at = time.monotonic()

    def stored_while_running() -> bool:
        with db.read() as session:
            status = session.scalar(sa.select(Job.status).where(Job.id == job_id))
            texts = session.scalars(
                sa.select(JobLogChunk.text).where(JobLogChunk.job_id == job_id)
            ).all()
        assert status == "running", "the line should be stored before the job ends"
        return any("TASK [Wait]" in text for text in texts)

    wait_until(
        stored_while_running, timeout_s=10, what="the line in job_log_chunk", interval_s=0.02
    )
    assert time.monotonic() - printed_at < FLUSH_BOUND_S
    done = wait_finished(admin, job_id)
    assert done["status"] == "successful"


def test_a_cancel_written_by_another_replica_stops_the_job(
    admin: TestClient, data_dir: Path
) -> None:
    job_id, _ = running_job(admin, sleep_s=60)
    wait_lines(admin, "TASK [Wait]")
    # What POST /info/job/active/cancel on another replica writes; no signal reaches this one,
    # so the runner must find it in the row.
    with runtime_of(admin.app).db.write() as session:
        jobs.request_cancel(session=session, actor="operator-on-b")
    done = wait_finished(admin, job_id, timeout_s=30)
    assert done["status"] == "canceled"
    assert done["error"] == "canceled by operator-on-b"
    assert job_processes(data_dir / "jobs" / str(job_id)) == []
    assert states(admin) == {"m1": "failed"}
    last = admin.get("/info/job/last").json()
    assert last["complete"] is True
    assert last["logs"][-1].startswith(f"[clusterm: job {job_id} canceled")


def test_kill_now_stops_the_playbook_at_once_and_leaves_the_row_to_recover(
    admin: TestClient, data_dir: Path
) -> None:
    job_id, _ = running_job(admin, sleep_s=60)
    seen = wait_lines(admin, "TASK [Wait]")
    job_dir = data_dir / "jobs" / str(job_id)
    assert job_processes(job_dir)
    manager = runtime_of(admin.app).jobs
    manager.kill_now()
    wait_no_processes(job_dir, timeout_s=5)
    wait_until(lambda: manager.runner.running is None, timeout_s=10, what="the job thread to end")
    # A replica that loses the lead writes nothing more: the job is still running in the rows.
    assert admin.get(f"/jobs/{job_id}").json()["status"] == "running"

    manager.recover()  # what the next leader does
    done = admin.get("/info/job/last").json()
    assert done["id"] == job_id
    assert done["status"] == "interrupted"
    assert done["complete"] is True
    # Every line served before the kill is kept, numbered as before; then why it ended.
    assert done["logs"][: len(seen["logs"])] == seen["logs"]
    assert done["logs"][-1].startswith(f"[clusterm: job {job_id} interrupted")
    assert states(admin) == {"m1": "failed"}
