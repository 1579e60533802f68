"""Per-host, per-task results of a job, and why a host failed on the timeline: real Ansible
(local connection, and a host whose SSH port is closed) under ansible-runner, through the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.jobs.models import JobHost, JobTask
from app.main import create_app
from app.runtime import runtime_of
from clusterctl.main import run
from tests.core.test_daemon import free_port
from tests.jobs.conftest import (
    LOCAL_VARS,
    job_settings,
    local_node,
    register,
    wait_finished,
    wait_lines,
)
from tests.polling import wait_until

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

SECRET = "planted-S3CRET-7f3a9c"  # an extra var's value: it must never reach a stored row


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    return job_settings(data_dir, db_url, commission_playbook="results.yml")


def unreachable_node(name: str) -> dict[str, Any]:
    # Nothing listens on the port: ssh's connection is refused, Ansible says unreachable.
    port = free_port()
    return local_node(name, vars={**LOCAL_VARS, "ansible_connection": "ssh", "ansible_port": port})


def history(client: TestClient, node: str) -> list[dict[str, Any]]:
    page = client.get(f"/info/node/{node}/history", params={"limit": 100}).json()
    return list(page["items"])


def host_failed(client: TestClient, node: str, job_id: int) -> dict[str, Any]:
    return next(
        e for e in history(client, node) if e["reason"] == "HostFailed" and e["job_id"] == job_id
    )


def stored_text(client: TestClient) -> str:
    db = runtime_of(client.app).db
    with db.read() as session:
        tasks = session.execute(sa.select(JobTask)).scalars().all()
        hosts = session.execute(sa.select(JobHost)).scalars().all()
        rows = [*tasks, *hosts]
        return json.dumps(
            [{c.key: str(getattr(r, c.key)) for c in r.__table__.columns} for r in rows]
        )


def test_hosts_show_the_failed_task_and_the_timeline_says_why(
    admin: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    register(admin, local_node("m1", "master"), local_node("w1"), local_node("w2"))
    register(admin, unreachable_node("w3"))
    body = {
        "nodes": ["m1", "w1", "w2", "w3"],
        "extra_vars": {"secret_token": SECRET, "fail_hosts": ["w2"], "rescue_hosts": ["m1"]},
    }
    job = admin.post("/commission/nodes", json=body).json()
    done = wait_finished(admin, job["id"])
    assert done["status"] == "failed"

    hosts = admin.get(f"/jobs/{job['id']}/hosts")
    assert hosts.status_code == 200, hosts.text
    by_host = {h["host"]: h for h in hosts.json()["hosts"]}
    assert sorted(by_host) == ["m1", "w1", "w2", "w3"]
    # The counts are Ansible's recap, as the job's own summary has them.
    for name, counts in done["hosts"].items():
        assert {k: by_host[name][k] for k in counts} == counts
    assert by_host["w1"]["failed_tasks"] == []
    assert by_host["m1"]["rescued"] == 1
    assert by_host["m1"]["failed_tasks"] == []  # the rescued failure is not a failure
    (failure,) = by_host["w2"]["failed_tasks"]
    assert (failure["task"], failure["status"], failure["rc"]) == ("Fail on request", "failed", 3)
    assert failure["msg"] == "non-zero return code"
    assert "the disk is on fire" in failure["stderr_tail"]
    assert "asked to fail w2" in failure["stdout_tail"]
    (dark,) = by_host["w3"]["failed_tasks"]
    # debug needs no connection: the first task that connects finds the host unreachable.
    assert (dark["status"], dark["task"]) == ("unreachable", "Change something")
    assert "Connection refused" in dark["msg"]

    # One host: every task, in order, with its status and duration.
    w2 = admin.get(f"/jobs/{job['id']}/hosts/w2").json()
    statuses = [(t["task"], t["status"]) for t in w2["tasks"] if t["run"] == "main"]
    assert statuses == [
        ("Say hello", "ok"),
        ("Change something", "changed"),
        ("Wait", "skipped"),
        ("Pass the secret to a command that fails", "ignored"),
        ("Print the secret under no_log", "ignored"),
        ("Break inside the block", "skipped"),
        ("Skipped everywhere", "skipped"),
        ("Fail on request", "failed"),
    ]
    # The cleanup of the failed host follows, under its own run.
    cleanup = w2["tasks"][len(statuses) :]
    assert cleanup[0]["task"] == "Clean up"
    assert {t["run"] for t in cleanup} == {"cleanup"}
    assert all(t["duration_ms"] is not None and t["duration_ms"] >= 0 for t in w2["tasks"])
    assert all(t["started_at"] for t in w2["tasks"])
    hidden = next(t for t in w2["tasks"] if t["task"] == "Print the secret under no_log")
    assert "no_log" in hidden["msg"]
    assert hidden["stdout_tail"] is None
    assert hidden["stderr_tail"] is None
    m1 = admin.get(f"/jobs/{job['id']}/hosts/m1").json()
    assert ("Break inside the block", "rescued") in [(t["task"], t["status"]) for t in m1["tasks"]]
    assert m1["tasks"][-1]["task"] == "After the failure"

    # The planted secret went through a failed command and a no_log task: no stored row has it.
    assert SECRET not in stored_text(admin)
    assert SECRET not in hosts.text
    assert SECRET not in admin.get(f"/jobs/{job['id']}/hosts/w1").text

    text = admin.get(f"/jobs/{job['id']}/hosts", params={"format": "text"})
    assert text.headers["content-type"].startswith("text/plain")
    lines = text.text.splitlines()
    assert lines[1].split()[:3] == ["HOST", "OK", "CHANGED"]
    assert "w2: failed in task 'Fail on request' (rc 3): non-zero return code" in text.text
    assert "stderr: the disk is on fire" in text.text
    one = admin.get(f"/jobs/{job['id']}/hosts/w2", headers={"Accept": "text/plain"}).text
    assert "Fail on request" in one
    assert "ACTION" in one

    # The timeline says why each failed host failed, in its note and its details.
    event = host_failed(admin, "w2", job["id"])
    assert event["details"]["reason"] == "TaskFailed"
    assert event["details"]["task"] == "Fail on request"
    assert "non-zero return code (rc 3)" in event["details"]["message"]
    assert "the disk is on fire" in event["details"]["message"]
    assert event["details"]["failed"] == 1
    assert event["note"].startswith("TaskFailed in task 'Fail on request': non-zero return code")
    assert "\n" not in event["note"]
    dark_event = host_failed(admin, "w3", job["id"])
    assert dark_event["details"]["reason"] == "Unreachable"
    assert dark_event["details"]["task"] == "Change something"
    assert "Connection refused" in dark_event["details"]["message"]
    assert SECRET not in json.dumps(history(admin, "w2"))

    # The CLI: the job's hosts, one host, and the node's history with the reason on one line.
    argv = ["--token", tokens["admin"]]
    assert run([*argv, "job", "hosts", str(job["id"])], http=admin) == 0
    out = capsys.readouterr().out
    assert "w2: failed in task 'Fail on request'" in out
    assert run([*argv, "job", "hosts", str(job["id"]), "w3", "--json"], http=admin) == 0
    assert json.loads(capsys.readouterr().out)["unreachable"] == 1
    assert run([*argv, "node", "history", "w2"], http=admin) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "HostFailed" in x)
    assert "TaskFailed in task 'Fail on request': non-zero return code (rc 3)" in line

    # What to do when asking for what is not there.
    missing = admin.get(f"/jobs/{job['id']}/hosts/nope")
    assert missing.status_code == 404
    assert f"GET /jobs/{job['id']}/hosts" in missing.json()["message"]
    assert admin.get("/jobs/999/hosts").status_code == 404
    assert admin.get("/jobs/0/hosts").status_code == 422
    assert run([*argv, "job", "hosts", "999"], http=admin) == 1


def test_a_cancel_names_the_task_it_cut(admin: TestClient) -> None:
    register(admin, local_node("m1", "master"))
    job = admin.post(
        "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 60}}
    ).json()
    wait_lines(admin, "TASK [Wait]")
    # The host's tasks so far are stored while the job runs.
    live = admin.get(f"/jobs/{job['id']}/hosts/m1").json()
    assert [t["task"] for t in live["tasks"]][:2] == ["Say hello", "Change something"]
    assert admin.post("/info/job/active/cancel").status_code == 200
    assert wait_finished(admin, job["id"])["status"] == "canceled"
    event = host_failed(admin, "m1", job["id"])
    assert event["details"]["reason"] == "Canceled"
    assert event["details"]["task"] == "Wait"
    assert event["note"] == "Canceled in task 'Wait'"


def test_results_go_with_the_log_and_can_be_kept_to_failures(data_dir: Path, db_url: str) -> None:
    settings = job_settings(
        data_dir,
        db_url,
        commission_playbook="results.yml",
        update_playbook="results.yml",
        job_dirs_kept=2,
        job_task_results=False,
    )
    app: FastAPI = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        token = settings.admin_token_file.read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        register(client, local_node("m1", "master"), local_node("w1"))
        body = {"nodes": ["m1", "w1"], "extra_vars": {"fail_hosts": ["w1"]}}
        first = client.post("/commission/nodes", json=body).json()["id"]
        wait_finished(client, first)
        # Only the failed tasks were stored; the counts and the failure's reason stay.
        hosts = {h["host"]: h for h in client.get(f"/jobs/{first}/hosts").json()["hosts"]}
        assert hosts["w1"]["tasks_recorded"] is False
        assert hosts["w1"]["ok"] >= 2
        assert [t["task"] for t in hosts["w1"]["failed_tasks"]] == ["Fail on request"]
        w1 = client.get(f"/jobs/{first}/hosts/w1").json()
        assert {t["status"] for t in w1["tasks"]} == {"failed"}  # ignored ones are not kept
        text = client.get(f"/jobs/{first}/hosts/w1", params={"format": "text"}).text
        assert "job_task_results is off" in text
        assert host_failed(client, "w1", first)["details"]["reason"] == "TaskFailed"

        for _ in range(2):
            job = client.post("/update/nodes", json={"nodes": ["m1"]}).json()
            assert wait_finished(client, job["id"])["status"] == "successful"
        # The first job is older than the newest job_dirs_kept: its results went with its log.
        # (dropped just after the last job's end, by the runner)
        gone = wait_until(
            lambda: (r := client.get(f"/jobs/{first}/hosts")).status_code == 410 and r,
            timeout_s=10,
            what="the first job's results to be dropped",
        )
        assert "job_dirs_kept (2)" in gone.json()["message"]
        assert client.get(f"/jobs/{first}/hosts/w1").status_code == 410
        assert client.get(f"/jobs/{job['id']}/hosts").status_code == 200
        db = runtime_of(client.app).db
        with db.read() as session:
            left = set(session.scalars(sa.select(JobHost.job_id).distinct()).all())
        assert first not in left
