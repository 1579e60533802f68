"""Jobs that run: what Ansible did, per host; the log and its reads; cancel, timeout, big and odd
output. Real Ansible (local connection) under ansible-runner."""

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
    local_node,
    register,
    states,
    wait_finished,
    wait_lines,
)
from tests.polling import wait_until


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # SQLite only, to keep CI fast: these tests are about Ansible and the log; the store's part
    # (accepting, refusing, recording) runs on both backends in test_api.py.
    return f"sqlite:///{tmp_path / 'clusterm.db'}"


def timeline_reasons(client: TestClient, job_id: int) -> list[str]:
    db = runtime_of(client.app).db
    with db.read() as session:
        query = sa.select(TimelineEvent.reason).where(TimelineEvent.job_id == job_id)
        return list(session.scalars(query.order_by(TimelineEvent.id)))


def test_commission_runs_ansible_and_settles_each_node_by_its_own_host(admin: TestClient) -> None:
    register(admin, local_node("m1", "master"), local_node("w1"), local_node("w2"))
    response = admin.post(
        "/commission/nodes",
        json={"nodes": ["m1", "w1", "w2"], "extra_vars": {"fail_hosts": ["w2"]}},
    )
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["nodes"]) == (
        "commission",
        "queued",
        ["m1", "w1", "w2"],
    )

    done = wait_finished(admin, job["id"])
    assert done["status"] == "failed"
    assert done["rc"] == 2
    assert "w2 (failed)" in done["error"]
    assert done["hosts"]["m1"]["failed"] == 0
    assert done["hosts"]["m1"]["ok"] >= 1
    assert done["hosts"]["w2"]["failed"] == 1
    assert states(admin) == {"m1": "commissioned", "w1": "commissioned", "w2": "failed"}

    last = admin.get("/info/job/last").json()
    assert last["id"] == job["id"]
    assert last["complete"] is True
    assert last["status"] == "failed"
    text = "\n".join(last["logs"])
    # The inventory: groups and the extra vars clusterm adds.
    assert f"commission w1 job={job['id']} groups=targets,workers masters=m1" in text
    # The cleanup ran on the failed host only, under its marker, in the same log.
    marker = next(i for i, line in enumerate(last["logs"]) if "cleanup of the failed hosts" in line)
    assert "(w2)" in last["logs"][marker]
    assert "cleanup w2" in "\n".join(last["logs"][marker:])
    assert "cleanup m1" not in text
    assert "cleanup w1" not in text
    assert last["logs"][-1].startswith(f"[clusterm: job {job['id']} failed (rc 2)")
    assert last["first_line"] == 1
    assert last["next_line"] == len(last["logs"]) + 1

    reasons = timeline_reasons(admin, job["id"])
    for reason in ("JobAccepted", "JobStarted", "HostSucceeded", "HostFailed", "JobFailed"):
        assert reason in reasons


def test_logs_since_tail_text_and_color(admin: TestClient) -> None:
    register(admin, local_node("m1", "master"))
    job = admin.post("/commission/nodes", json={"nodes": ["m1"]}).json()
    wait_finished(admin, job["id"])
    full = admin.get("/info/job/last").json()
    total = len(full["logs"])
    assert total > 10
    assert full["next_line"] == total + 1

    part = admin.get("/info/job/last", params={"since": 5}).json()
    assert part["first_line"] == 6
    assert part["logs"] == full["logs"][5:]
    assert admin.get("/info/job/last", params={"since": total}).json()["logs"] == []
    tail = admin.get("/info/job/last", params={"tail": 3}).json()
    assert tail["logs"] == full["logs"][-3:]
    assert tail["first_line"] == total - 2
    # A page: the lines 3 to 6, as a reader holding line 7 on asks for the ones before it.
    page = admin.get("/info/job/last", params={"since": 2, "limit": 4}).json()
    assert (page["logs"], page["first_line"], page["next_line"]) == (full["logs"][2:6], 3, 7)
    by_id = admin.get(f"/jobs/{job['id']}/log", params={"since": 2, "limit": 4}).json()
    assert by_id["logs"] == page["logs"]
    # A page never replaces the whole log kept for the next reader (the finished job's body).
    assert admin.get("/info/job/last").json()["logs"] == full["logs"]

    assert any("\x1b[" in line for line in full["logs"])
    plain = admin.get("/info/job/last", params={"color": "false"}).json()["logs"]
    assert not any("\x1b" in line for line in plain)
    assert len(plain) == total

    text = admin.get("/info/job/last", params={"format": "text", "color": "false"})
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == "\n".join(plain) + "\n"
    assert text.headers["x-clusterm-next-line"] == str(total + 1)
    accept = admin.get("/info/job/last", headers={"Accept": "text/plain"})
    assert accept.headers["content-type"].startswith("text/plain")
    assert "PLAY RECAP" in accept.text

    assert admin.get("/info/job/last", params={"since": -1}).status_code == 422
    assert admin.get("/info/job/last", params={"tail": 0}).status_code == 422
    assert admin.get("/info/job/last", params={"limit": 0}).status_code == 422
    assert admin.get("/info/job/middle").status_code == 422


def processes_running(needle: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_cancel_leaves_no_ansible_process(admin: TestClient, data_dir: Any) -> None:
    register(admin, local_node("m1", "master"))
    # No cleanup after the cancel: this is about what the cancel leaves (test_cleanup.py).
    body = {"nodes": ["m1"], "extra_vars": {"sleep_s": 61.37}, "cleanup": False}
    job = admin.post("/commission/nodes", json=body).json()
    wait_lines(admin, "TASK [Wait]")
    job_dir = data_dir / "jobs" / str(job["id"])
    assert job_processes(job_dir), "ansible-playbook should be running"
    wait_until(
        lambda: processes_running(b"sleep\x0061.37"),
        timeout_s=10,
        what="the task's own process (sleep 61.37) to run",
        interval_s=0.02,
    )

    canceled = admin.post("/info/job/active/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    # Ansible's workers setsid(): runner's kill of the process group alone would miss them.
    assert job_processes(job_dir) == []
    assert processes_running(b"sleep\x0061.37") == []
    assert admin.get("/info/job/active").status_code == 404
    last = admin.get("/info/job/last").json()
    assert last["status"] == "canceled"
    assert last["error"] == "canceled by admin"
    assert last["complete"] is True
    assert states(admin) == {"m1": "failed"}
    assert "CancelRequested" in timeline_reasons(admin, job["id"])


def test_job_timeout(data_dir: Any, db_url: str) -> None:
    from tests.jobs.conftest import job_settings

    settings = job_settings(data_dir, db_url, job_timeout_s=2)
    with admin_client(settings) as client:
        register(client, local_node("m1", "master"))
        job = client.post(
            "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 60}}
        ).json()
        done = wait_finished(client, job["id"])
        assert done["status"] == "timeout"
        assert "job_timeout_s (2 s)" in done["error"]
        assert job_processes(data_dir / "jobs" / str(job["id"])) == []
        assert states(client) == {"m1": "failed"}


def test_discover_runs_on_addresses(admin: TestClient) -> None:
    response = admin.post(
        "/discover/nodes",
        json={"addrs": ["127.0.0.1:22"], "extra_vars": {"ansible_connection": "local"}},
    )
    assert response.status_code == 202, response.text
    done = wait_finished(admin, response.json()["id"])
    assert done["status"] == "successful"
    assert done["nodes"] == ["127.0.0.1"]
    assert "127.0.0.1" in done["hosts"]
    assert "discover 127.0.0.1" in admin.get("/info/job/last", params={"format": "text"}).text


def test_big_output_keeps_head_marker_and_tail_and_odd_bytes(data_dir: Any, db_url: str) -> None:
    """Megabytes through a real job, past a small cap; raw invalid UTF-8 and ANSI on the way.
    (50 MB through the buffer itself: test_logbuffer.py; through Ansible it takes a minute.)"""
    from tests.jobs.conftest import job_settings

    cap = 128 * 1024
    settings = job_settings(data_dir, db_url, job_log_cap_bytes=cap)
    with admin_client(settings) as client:
        register(client, local_node("m1", "master"))
        job = client.post(
            "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"emit_bytes": 2_000_000}}
        ).json()
        done = wait_finished(client, job["id"])
        assert done["status"] == "successful"
        last = client.get("/info/job/last").json()

    lines = last["logs"]
    assert last["dropped_lines"] > 15_000
    assert last["dropped_bytes"] > 1_700_000
    assert sum(len(line.encode()) + 1 for line in lines) < cap + 1024
    gap = last["gap"]
    marker = lines.index(
        next(line for line in lines if line.startswith("[clusterm:") and "dropped" in line)
    )
    assert f"{gap['lines']} lines" in lines[marker]
    # Head: the start of the job, with the raw bytes decoded as a terminal shows them.
    head = lines[:marker]
    assert "EMIT BEGIN" in head
    odd = head[head.index("EMIT BEGIN") + 1]
    assert odd == "odd bytes: caf\ufffd \ufffd\ufffd, \x1b[31mred\x1b[0m and \x1b[1mbold\x1b[0m"
    # Tail: the end of the job, its recap and clusterm's last word.
    tail = lines[marker + 1 :]
    assert "EMIT END" in tail
    assert any(line.startswith("PLAY RECAP") for line in tail)
    assert tail[-1].startswith(f"[clusterm: job {job['id']} successful")
    # Line numbers stay absolute across the gap.
    assert last["first_line"] == 1
    assert last["next_line"] == gap["after_line"] + gap["lines"] + len(tail) + 1
    assert marker == gap["after_line"]

    with admin_client(settings) as client:  # after a restart, from the database
        again = client.get("/info/job/last").json()
        assert again["logs"] == lines
        since = client.get("/info/job/last", params={"since": last["next_line"] - 3}).json()
        assert since["logs"] == lines[-2:]
        plain = client.get("/info/job/last", params={"format": "text", "color": "false"}).text
        assert "odd bytes: caf\ufffd \ufffd\ufffd, red and bold\n" in plain
