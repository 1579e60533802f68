"""Cleanup of the nodes a commission leaves failed: after a cancel, a timeout, a failure (unless
the request says `cleanup: false`), stopped by a second cancel; and on demand, POST /cleanup/nodes.
Real Ansible (local connection) with the test cleanup playbook (tests/jobs/playbooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.runtime import runtime_of
from app.timeline.models import TimelineEvent
from tests.conftest import admin_client
from tests.jobs.conftest import (
    job_processes,
    job_settings,
    local_node,
    register,
    states,
    wait_finished,
    wait_lines,
)
from tests.jobs.test_cli import ctl
from tests.polling import wait_until

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

MARKER = "cleanup of the failed hosts"


def events(client: TestClient, job_id: int, reason: str) -> list[TimelineEvent]:
    with runtime_of(client.app).db.read() as session:
        query = sa.select(TimelineEvent).where(
            TimelineEvent.job_id == job_id, TimelineEvent.reason == reason
        )
        return list(session.scalars(query.order_by(TimelineEvent.id)))


def host_failed_reasons(client: TestClient, job_id: int) -> dict[str | None, Any]:
    return {
        e.node_name: (e.details or {}).get("reason") for e in events(client, job_id, "HostFailed")
    }


def last_log(client: TestClient) -> str:
    text: str = client.get("/info/job/last", params={"format": "text", "color": "false"}).text
    return text


def sleeping_commission(client: TestClient, **body: Any) -> int:
    register(client, local_node("m1", "master"))
    extra = {"sleep_s": 60, **body.pop("extra_vars", {})}
    response = client.post("/commission/nodes", json={"nodes": ["m1"], "extra_vars": extra, **body})
    assert response.status_code == 202, response.text
    wait_lines(client, "TASK [Wait]")
    return int(response.json()["id"])


def test_a_cancelled_commission_cleans_up_its_nodes(admin: TestClient) -> None:
    job_id = sleeping_commission(admin)
    answer = admin.post("/info/job/active/cancel")
    assert answer.status_code == 200
    # The cancel answers once the cleanup has started (or the job has ended, when it was quick).
    assert answer.json()["status"] in ("running", "canceled")

    done = wait_finished(admin, job_id)
    assert done["status"] == "canceled"
    assert done["error"] == "canceled by admin"
    log = last_log(admin)
    assert f"{MARKER} (m1)" in log
    assert "cleanup m1" in log
    assert "[clusterm: cleanup successful (rc 0)]" in log
    assert states(admin) == {"m1": "failed"}
    assert host_failed_reasons(admin, job_id) == {"m1": "Canceled"}
    assert len(events(admin, job_id, "CancelRequested")) == 1


def test_cleanup_false_leaves_the_cancelled_nodes_as_they_are(admin: TestClient) -> None:
    job_id = sleeping_commission(admin, cleanup=False)
    assert admin.post("/info/job/active/cancel").json()["status"] == "canceled"
    log = last_log(admin)
    assert MARKER not in log
    assert "cleanup m1" not in log
    assert states(admin) == {"m1": "failed"}
    assert host_failed_reasons(admin, job_id) == {"m1": "Canceled"}


def test_cleanup_false_also_leaves_a_failed_commission_alone(admin: TestClient) -> None:
    register(admin, local_node("m1", "master"))
    body = {"nodes": ["m1"], "extra_vars": {"fail_hosts": ["m1"]}, "cleanup": False}
    done = wait_finished(admin, admin.post("/commission/nodes", json=body).json()["id"])
    assert done["status"] == "failed"
    assert MARKER not in last_log(admin)
    assert states(admin) == {"m1": "failed"}


def test_cleanup_must_be_a_boolean(admin: TestClient) -> None:
    register(admin, local_node("m1", "master"))
    response = admin.post("/commission/nodes", json={"nodes": ["m1"], "cleanup": "no"})
    assert response.status_code == 422
    assert "cleanup" in response.text
    assert states(admin) == {"m1": "registered"}


def test_a_timed_out_commission_cleans_up_its_nodes(data_dir: Path, db_url: str) -> None:
    settings = job_settings(data_dir, db_url, job_timeout_s=4)
    with admin_client(settings) as client:
        job_id = sleeping_commission(client)
        done = wait_finished(client, job_id)
        assert done["status"] == "timeout"
        assert "job_timeout_s (4 s)" in done["error"]
        log = last_log(client)
        assert f"{MARKER} (m1)" in log
        assert "cleanup m1" in log
        assert states(client) == {"m1": "failed"}
        assert host_failed_reasons(client, job_id) == {"m1": "TimedOut"}
        assert job_processes(data_dir / "jobs" / str(job_id)) == []


def test_a_second_cancel_stops_the_cleanup(admin: TestClient, data_dir: Path) -> None:
    job_id = sleeping_commission(admin, extra_vars={"cleanup_sleep_s": 60})
    first = admin.post("/info/job/active/cancel").json()
    assert first["status"] == "running"  # its cleanup runs
    wait_lines(admin, "TASK [Wait in the cleanup]")
    job_dir = data_dir / "jobs" / str(job_id)
    assert job_processes(job_dir), "the cleanup playbook should be running"

    second = admin.post("/info/job/active/cancel").json()
    assert second["status"] == "canceled"
    assert second["error"] == "canceled by admin; its cleanup canceled by admin"
    assert job_processes(job_dir) == []
    log = last_log(admin)
    assert "[clusterm: cleanup canceled" in log
    assert states(admin) == {"m1": "failed"}
    assert host_failed_reasons(admin, job_id) == {"m1": "Canceled"}
    assert len(events(admin, job_id, "CancelRequested")) == 2


def test_a_lost_lead_runs_no_cleanup_and_recovery_says_interrupted(admin: TestClient) -> None:
    job_id = sleeping_commission(admin)
    manager = runtime_of(admin.app).jobs
    manager.kill_now()  # the lead is lost: the job is left to the next leader
    wait_until(lambda: manager.runner.running is None, timeout_s=10, what="the job thread to end")
    manager.recover()  # what the next leader (or the next start) does
    done = wait_finished(admin, job_id)
    assert done["status"] == "interrupted"
    assert MARKER not in last_log(admin)
    assert states(admin) == {"m1": "failed"}
    assert host_failed_reasons(admin, job_id) == {"m1": "Interrupted"}


def failed_node(client: TestClient, name: str = "m1") -> None:
    register(client, local_node(name, "master"))
    body = {"nodes": [name], "extra_vars": {"fail_hosts": [name]}, "cleanup": False}
    wait_finished(client, client.post("/commission/nodes", json=body).json()["id"])
    assert states(client)[name] == "failed"


def test_cleanup_nodes_on_a_failed_node_registers_it_again(admin: TestClient) -> None:
    failed_node(admin)
    response = admin.post("/cleanup/nodes", json={"nodes": ["m1"]})
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["nodes"]) == ("cleanup", ["m1"])
    assert response.headers["location"] == f"/jobs/{job['id']}"
    done = wait_finished(admin, job["id"])
    assert done["status"] == "successful"
    assert "cleanup m1" in last_log(admin)
    assert states(admin) == {"m1": "registered"}
    [moved] = events(admin, job["id"], "HostSucceeded")
    assert (moved.from_state, moved.to_state) == ("cleaning", "registered")
    # A cleaned node can be commissioned again.
    again = admin.post("/commission/nodes", json={"nodes": ["m1"]}).json()
    assert wait_finished(admin, again["id"])["status"] == "successful"


def test_a_failed_cleanup_leaves_the_node_failed(admin: TestClient) -> None:
    failed_node(admin)
    body = {"nodes": ["m1"], "extra_vars": {"cleanup_fail_hosts": ["m1"]}}
    done = wait_finished(admin, admin.post("/cleanup/nodes", json=body).json()["id"])
    assert done["status"] == "failed"
    assert states(admin) == {"m1": "failed"}


def test_cleanup_nodes_refuses_nodes_that_are_not_failed(admin: TestClient, as_role: Any) -> None:
    failed_node(admin, "m1")
    register(admin, local_node("m2", "master"), local_node("w1"))
    wait_finished(admin, admin.post("/commission/nodes", json={"nodes": ["m2"]}).json()["id"])
    jobs_before = len(admin.get("/jobs").json())

    response = admin.post("/cleanup/nodes", json={"nodes": ["m1", "m2", "w1"]})
    assert response.status_code == 409
    body = response.json()
    assert "m2 (commissioned), w1 (registered)" in body["message"]
    assert "m1" not in body["message"]
    assert body["nodes"] == {"m2": "commissioned", "w1": "registered"}
    assert states(admin) == {"m1": "failed", "m2": "commissioned", "w1": "registered"}
    assert len(admin.get("/jobs").json()) == jobs_before

    assert admin.post("/cleanup/nodes", json={"nodes": ["nope"]}).status_code == 404
    assert admin.post("/cleanup/nodes", json={"nodes": []}).status_code == 422
    assert admin.post("/cleanup/nodes", json={"nodes": ["m1"], "x": 1}).status_code == 422
    viewer = admin.post("/cleanup/nodes", json={"nodes": ["m1"]}, headers=as_role("viewer"))
    assert viewer.status_code == 403
    assert states(admin)["m1"] == "failed"


def test_clusterctl_nodes_cleanup(
    admin: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    failed_node(admin)
    capsys.readouterr()
    assert ctl(admin, tokens, "nodes", "cleanup", "m1", "--wait", role="operator") == 0
    out, err = capsys.readouterr()
    assert "cleanup m1" in out
    assert "successful" in err
    assert states(admin) == {"m1": "registered"}
    assert ctl(admin, tokens, "nodes", "cleanup", "m1") == 1  # 409: not failed any more
    assert "m1 (registered)" in capsys.readouterr().err


def test_clusterctl_job_cancel_says_the_cleanup_runs(
    admin: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = sleeping_commission(admin, extra_vars={"cleanup_sleep_s": 60})
    capsys.readouterr()
    assert ctl(admin, tokens, "job", "cancel", role="operator") == 0
    assert "is still running: a cancelled commission cleans up its nodes first (cancel again" in (
        capsys.readouterr().err
    )
    wait_lines(admin, "TASK [Wait in the cleanup]")
    assert ctl(admin, tokens, "job", "cancel", role="operator") == 0
    assert f"job {job_id} canceled" in capsys.readouterr().err
    assert states(admin) == {"m1": "failed"}
