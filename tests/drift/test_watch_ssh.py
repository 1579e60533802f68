"""The drift watch against real SSH hosts: a node commissioned by clusterm, then deleted from the
(simulated) control plane, is reported missing, and returned when it is back; with remediation on,
exactly one re-join job is queued per interval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings, load_settings
from app.main import create_app
from app.runtime import runtime_of
from tests.hosts.fixture import SshHosts, ssh_hosts  # noqa: F401  (the fixture)
from tests.jobs.conftest import wait_finished
from tests.polling import wait_until

# Short windows for the verified join; the product's defaults are minutes.
FAST_JOIN = {
    "clusterm_join_stability_window": 1,
    "clusterm_join_poll": 0.5,
    "clusterm_join_backoff": 0,
    "clusterm_join_register_timeout": 10,
}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # SQLite only: these tests are about Ansible and the control plane; the store is tested on
    # both backends elsewhere, and SSH runs are the slow part of the suite.
    return f"sqlite:///{tmp_path / 'clusterm.db'}"


def drift_settings(data_dir: Path, db_url: str, hosts: SshHosts, **extra: Any) -> Settings:
    return load_settings(
        data_dir=data_dir,
        database_url=db_url,
        ssh_private_key_file=hosts.private_key,
        extra_vars=FAST_JOIN,
        drift_interval_s=0,  # checks on demand (POST /drift/check); the loop is tested below
        **extra,
    )


@pytest.fixture
def settings(data_dir: Path, db_url: str, ssh_hosts: SshHosts) -> Settings:  # noqa: F811
    return drift_settings(data_dir, db_url, ssh_hosts)


def commission(admin: TestClient, hosts: SshHosts, count: int) -> list[str]:
    started = hosts.start(count)
    admin.post("/nodes", json=[h.node_body() for h in started])
    names = [h.name for h in started]
    r = admin.post("/commission/nodes", json={"nodes": names})
    assert r.status_code == 202, r.text
    job = wait_finished(admin, r.json()["id"], timeout_s=180)
    assert job["status"] == "successful", admin.get("/info/job/last?format=text").text
    return names


def reasons(admin: TestClient) -> list[tuple[str, str]]:
    items = admin.get("/info/timeline", params={"action": "drift"}).json()["items"]
    return [(e["node"], e["reason"]) for e in reversed(items)]


def test_missing_returned_remediated_and_unreachable(
    admin: TestClient,
    ssh_hosts: SshHosts,  # noqa: F811
) -> None:
    # One cluster for the whole story: commissioning over SSH is the slow part of the suite.
    master, worker = commission(admin, ssh_hosts, 2)
    check = admin.post("/drift/check").json()
    assert check["outcome"] == "checked", check
    assert check["master"] == master
    assert check["missing"] == []
    assert admin.get(f"/info/node/{worker}").json()["in_cluster"] is True

    # Deleted from the control plane: missing, reported once.
    ssh_hosts.cluster.delete_node(worker)
    check = admin.post("/drift/check").json()
    assert check["missing"] == [worker]
    assert check["remediation_jobs"] == []  # remediation is off by default
    assert admin.post("/drift/check").json()["missing"] == [worker]
    assert reasons(admin) == [(worker, "NodeMissing")]
    node = admin.get(f"/info/node/{worker}").json()
    assert node["in_cluster"] is False
    assert node["missing_since"] is not None
    assert node["state"] == "commissioned"  # clusterm's record is not rewritten by a check

    # Back: returned.
    ssh_hosts.cluster.register_node(worker)
    check = admin.post("/drift/check").json()
    assert check["missing"] == []
    assert reasons(admin) == [(worker, "NodeMissing"), (worker, "NodeReturned")]
    assert admin.get(f"/info/node/{worker}").json()["in_cluster"] is True

    # Remediation on, with a real interval: one re-join job, and no second one within the
    # interval however often the node goes missing.
    watch = runtime_of(admin.app).drift
    watch.settings = watch.settings.model_copy(
        update={"drift_remediate": True, "drift_interval_s": 3600.0}
    )
    ssh_hosts.cluster.delete_node(worker)
    check = admin.post("/drift/check").json()
    assert check["missing"] == [worker]
    assert len(check["remediation_jobs"]) == 1
    job = wait_finished(admin, check["remediation_jobs"][0], timeout_s=180)
    assert job["kind"] == "update"
    assert job["actor"] == "drift-watch"
    assert job["status"] == "successful", admin.get("/info/job/last?format=text").text
    assert worker in ssh_hosts.cluster.nodes()  # the re-join put it back
    ssh_hosts.cluster.delete_node(worker)
    check = admin.post("/drift/check").json()
    assert check["missing"] == [worker]
    assert check["remediation_jobs"] == []
    queued = admin.get("/info/timeline", params={"reason": "RejoinQueued"}).json()["items"]
    assert [e["job_id"] for e in queued] == [job["id"]]

    # A master that does not answer is a failed check, not a missing node.
    before = reasons(admin)
    ssh_hosts[master].stop()
    check = admin.post("/drift/check").json()
    assert check["outcome"] == "failed"
    assert master in check["message"]
    assert reasons(admin) == before
    assert admin.get("/info/drift").json()["outcome"] == "failed"


def test_the_loop_checks_every_interval(
    data_dir: Path,
    db_url: str,
    ssh_hosts: SshHosts,  # noqa: F811
) -> None:
    # No cluster needed: the loop's first check (no master in the cluster) is recorded.
    settings = drift_settings(data_dir, db_url, ssh_hosts).model_copy(
        update={"drift_interval_s": 0.2}
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = "Bearer " + settings.admin_token_file.read_text().strip()
        wait_until(
            lambda: client.get("/info/drift").status_code != 404,
            timeout_s=10,
            what="the drift loop's first check",
        )
        assert client.get("/info/drift").json()["outcome"] == "skipped"


def attempts(admin: TestClient, node: str, job_id: int) -> list[tuple[int, str, str]]:
    items = admin.get(f"/info/node/{node}/history", params={"job": job_id, "limit": 100}).json()
    return [
        (e["attempt"], e["result"], e["reason"])
        for e in reversed(items["items"])
        if e["attempt"] is not None
    ]


def test_every_join_attempt_reaches_the_timeline(
    admin: TestClient,
    ssh_hosts: SshHosts,  # noqa: F811
) -> None:
    master, worker, doomed = (h.name for h in ssh_hosts.start(3))
    admin.post("/nodes", json=[ssh_hosts[n].node_body() for n in (master, worker, doomed)])
    # The cloud deletes the worker's first join, and every join of the doomed node.
    ssh_hosts.cluster.vanish(worker, joins=1)
    ssh_hosts.cluster.vanish(doomed, joins=10)
    r = admin.post(
        "/commission/nodes",
        json={"nodes": [master, worker, doomed], "extra_vars": {"clusterm_join_retries": 2}},
    )
    assert r.status_code == 202, r.text
    job = wait_finished(admin, r.json()["id"], timeout_s=180)
    assert job["status"] == "failed"  # one node failed; the others are commissioned
    states = {n["name"]: n["state"] for n in admin.get("/info/nodes").json()}
    assert states == {master: "commissioned", worker: "commissioned", doomed: "failed"}

    assert attempts(admin, worker, job["id"]) == [
        (1, "retrying", "NodeVanishedAfterJoin"),
        (2, "succeeded", "NodeJoined"),
    ]
    assert attempts(admin, doomed, job["id"]) == [
        (1, "retrying", "NodeVanishedAfterJoin"),
        (2, "failed", "NodeVanishedAfterJoin"),
    ]
    first = admin.get(
        "/info/timeline", params={"node": worker, "reason": "NodeVanishedAfterJoin"}
    ).json()["items"][0]
    assert first["note"].startswith("attempt 1 of 2:")
    assert first["job_id"] == job["id"]
    assert first["duration_ms"] is not None
