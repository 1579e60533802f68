"""The daemon end to end over real SSH: the shipped playbooks (ansible/) run against real sshd
hosts on loopback (tests/hosts), with the simulated control plane of tests/hosts/shims."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import load_settings
from tests.conftest import admin_client
from tests.hosts.fixture import SshHosts
from tests.hosts.fixture import ssh_hosts as ssh_hosts  # the fixture
from tests.jobs.conftest import job_processes, wait_finished
from tests.playbooks.conftest import FAST_JOIN
from tests.polling import wait_until


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # SQLite only, to keep CI fast: the store is covered on both backends by the other job tests.
    return f"sqlite:///{tmp_path / 'clusterm.db'}"


@pytest.fixture
def client(ssh_hosts: SshHosts, data_dir: Path, db_url: str) -> Iterator[TestClient]:
    """The daemon with its shipped playbooks, the hosts' key, and the host key policy default
    (accept new keys, remember them in the data dir)."""
    env = ssh_hosts.ansible_env()
    settings = load_settings(
        data_dir=data_dir,
        database_url=db_url,
        ssh_private_key_file=ssh_hosts.private_key,
        extra_vars=FAST_JOIN,
        ansible_env={
            key: env[key]
            for key in ("ANSIBLE_PIPELINING", "ANSIBLE_SSH_CONTROL_PATH_DIR", "ANSIBLE_FORKS")
        },
        job_timeout_s=240,
    )
    with admin_client(settings, raise_server_exceptions=False) as c:
        yield c


def states(client: TestClient) -> dict[str, str]:
    return {n["name"]: n["state"] for n in client.get("/info/nodes").json()}


def run_job(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    return wait_finished(client, response.json()["id"], timeout_s=240)


def test_commission_three_decommission_and_recommission(
    ssh_hosts: SshHosts, client: TestClient, data_dir: Path
) -> None:
    hosts = ssh_hosts.start(3)
    assert client.post("/nodes", json=[h.node_body() for h in hosts]).status_code == 201
    names = [h.name for h in hosts]

    job = run_job(client, "/commission/nodes", {"nodes": names})
    assert job["status"] == "successful", client.get("/info/job/last?format=text").text
    assert set(job["hosts"]) == set(names)
    assert states(client) == dict.fromkeys(names, "commissioned")
    assert set(ssh_hosts.cluster.nodes()) == set(names)
    # accept-new: the hosts' keys are now remembered in the data dir's known_hosts.
    known = {line.split()[2] for line in (data_dir / "known_hosts").read_text().splitlines()}
    for host in hosts:
        key = (host.home / "ssh_host_ed25519_key.pub").read_text().split()[1]
        assert key in known, f"{host.name}'s key is not in the data dir's known_hosts"

    worker = names[2]
    job = run_job(client, "/decommission/nodes", {"nodes": [worker]})
    assert job["status"] == "successful", client.get("/info/job/last?format=text").text
    assert states(client)[worker] == "decommissioned"
    assert worker not in ssh_hosts.cluster.nodes()

    job = run_job(client, "/commission/nodes", {"nodes": [worker]})
    assert job["status"] == "successful", client.get("/info/job/last?format=text").text
    assert states(client)[worker] == "commissioned"
    assert worker in ssh_hosts.cluster.nodes()


def test_an_unreachable_node_fails_alone_and_is_cleaned_up(
    ssh_hosts: SshHosts, client: TestClient
) -> None:
    hosts = ssh_hosts.start(2)  # a master, and a worker whose sshd is stopped
    client.post("/nodes", json=[h.node_body() for h in hosts]).raise_for_status()
    down = hosts[1]
    down.stop()

    job = run_job(client, "/commission/nodes", {"nodes": [h.name for h in hosts]})
    assert job["status"] == "failed"
    assert job["hosts"][down.name]["unreachable"] >= 1
    assert f"{down.name} (unreachable)" in job["error"]
    assert states(client) == {hosts[0].name: "commissioned", down.name: "failed"}
    assert set(ssh_hosts.cluster.nodes()) == {hosts[0].name}
    log = client.get("/info/job/last", params={"format": "text", "color": "false"}).text
    assert f"cleanup of the failed hosts ({down.name})" in log


def test_cancel_over_ssh_cleans_up_and_leaves_no_process(
    ssh_hosts: SshHosts, client: TestClient, data_dir: Path
) -> None:
    hosts = ssh_hosts.start(2)
    client.post("/nodes", json=[h.node_body() for h in hosts]).raise_for_status()
    job = client.post("/commission/nodes", json={"nodes": [h.name for h in hosts]}).json()

    def tasks_started() -> int:
        logs = client.get("/info/job/active").json()["logs"]
        return sum(line.startswith("TASK [") for line in logs)

    wait_until(lambda: tasks_started() >= 3, timeout_s=60, what="the job to reach its third task")

    # The cancel stops the commission and answers as the shipped cleanup starts on its nodes.
    assert client.post("/info/job/active/cancel").json()["status"] == "running"
    done = wait_finished(client, job["id"], timeout_s=240)
    assert done["status"] == "canceled"
    assert job_processes(data_dir / "jobs" / str(job["id"])) == []
    assert states(client) == {h.name: "failed" for h in hosts}
    log = client.get("/info/job/last", params={"format": "text", "color": "false"}).text
    names = ", ".join(h.name for h in hosts)
    assert f"cleanup of the failed hosts ({names})" in log
    assert "[clusterm: cleanup successful (rc 0)]" in log
    assert ssh_hosts.cluster.nodes() == {}

    # Cleaned up: commissioned again from scratch.
    job = run_job(client, "/commission/nodes", {"nodes": [h.name for h in hosts]})
    assert job["status"] == "successful", client.get("/info/job/last?format=text").text
