"""The shipped maintenance and rolling update playbooks, run by a real `clusterm serve` on sandbox
nodes (the demo's: local connection, simulated commands, one simulated cluster whose state file
keeps each Node's cordon, ansible/demo/fakek8s.py). A node is broken on purpose with the
simulated failure hook: `var/lib/fakehost/fail` under its root names the commands that fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import load_settings
from app.demo import demo_node
from app.nodes.vocabulary import HostGroup
from tests.jobs.conftest import wait_finished
from tests.jobs.daemon import Daemon

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
# A commission of up to five sandbox nodes takes a minute or two on a loaded machine.
COMMISSION_S = 480
JOB_S = 300


@pytest.fixture
def sandbox(tmp_path: Path) -> Any:
    """A real daemon running the shipped playbooks; yields (client, data dir)."""
    data = tmp_path / "data"
    daemon = Daemon(
        data,
        tmp_path / "stderr.log",
        CLUSTERM_PLAYBOOK_DIR=str(ANSIBLE),
        CLUSTERM_COMMISSION_PLAYBOOK="commission.yml",
        CLUSTERM_DECOMMISSION_PLAYBOOK="decommission.yml",
    )
    try:
        # The daemon imports ansible-runner as it starts: slow on a loaded machine.
        yield daemon.start(ready_timeout_s=120), data
    finally:
        daemon.close()


def commission(client: httpx.Client, data: Path, master: str, *workers: str) -> None:
    """Register sandbox nodes (as `clusterm serve --demo` does) and commission them."""
    settings = load_settings(data_dir=data, playbook_dir=ANSIBLE)
    nodes = [demo_node(settings, master, HostGroup.MASTER)]
    nodes += [demo_node(settings, w, HostGroup.WORKER) for w in workers]
    response = client.post("/nodes", json=[n.model_dump(mode="json") for n in nodes])
    assert response.status_code == 201, response.text
    response = client.post("/commission/nodes", json={"nodes": [master, *workers]})
    assert response.status_code == 202, response.text
    job = wait_finished(client, response.json()["id"], timeout_s=COMMISSION_S)
    assert job["status"] == "successful", log_tail(client, job["id"])


def log_tail(client: httpx.Client, job_id: int) -> str:
    return "\n".join(client.get(f"/jobs/{job_id}/log").json()["logs"][-60:])


def root(data: Path, name: str) -> Path:
    return data / "demo" / "nodes" / name


def cordoned(data: Path) -> dict[str, bool]:
    """Each Node's spec.unschedulable, as the simulated cluster keeps it."""
    state = json.loads((data / "demo" / "cluster" / "cluster.json").read_text())
    return {name: node["unschedulable"] for name, node in state["nodes"].items()}


def break_commands(data: Path, name: str, *commands: str) -> Path:
    path = root(data, name) / "var/lib/fakehost/fail"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{c}\n" for c in commands))
    return path


def states(client: httpx.Client) -> dict[str, str]:
    return {n["name"]: n["state"] for n in client.get("/info/nodes").json()}


def run(client: httpx.Client, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.request(method, path, json=body)
    assert response.status_code == 202, response.text
    return wait_finished(client, response.json()["id"], timeout_s=JOB_S)


def test_maintenance_cordons_drains_and_uncordons_the_node_in_the_cluster(sandbox: Any) -> None:
    client, data = sandbox
    commission(client, data, "m1", "w1")
    assert cordoned(data) == {"m1": False, "w1": False}

    job = run(client, "PUT", "/nodes/w1/maintenance", {"enabled": True, "drain": True})
    assert job["status"] == "successful", log_tail(client, job["id"])
    assert (job["kind"], job["nodes"]) == ("maintenance", ["w1"])
    assert cordoned(data) == {"m1": False, "w1": True}
    assert states(client)["w1"] == "maintenance"

    job = run(client, "PUT", "/nodes/w1/maintenance", {"enabled": False})
    assert job["status"] == "successful", log_tail(client, job["id"])
    assert cordoned(data) == {"m1": False, "w1": False}
    assert states(client)["w1"] == "commissioned"

    # kubectl fails (wherever the playbook runs it): the job fails, nothing moves.
    broken = [break_commands(data, n, "kubectl") for n in ("m1", "w1")]
    job = run(client, "PUT", "/nodes/w1/maintenance", {"enabled": True})
    assert job["status"] == "failed"
    assert cordoned(data) == {"m1": False, "w1": False}
    assert states(client)["w1"] == "commissioned"
    events = client.get("/info/node/w1/history", params={"job": job["id"]}).json()["items"]
    [failed] = [e for e in events if e["reason"] == "HostFailed"]
    assert "simulated by var/lib/fakehost/fail" in failed["note"]
    assert failed["to_state"] is None

    for path in broken:
        path.unlink()
    job = run(client, "PUT", "/nodes/w1/maintenance", {"enabled": True})
    assert job["status"] == "successful", log_tail(client, job["id"])
    assert cordoned(data)["w1"] is True


def test_a_rolling_update_that_fails_in_its_second_batch_leaves_the_rest_untouched(
    sandbox: Any,
) -> None:
    client, data = sandbox
    # Five nodes: Ansible's default forks, so each task of the commission runs on all at once.
    workers = [f"w{i}" for i in range(1, 5)]
    commission(client, data, "m1", *workers)
    # Something disruptive to do on every worker (containerd's configuration is gone), and
    # containerd's restart fails on w2: a batch of 20 % is one node, w2's is the second.
    for name in workers:
        (root(data, name) / "etc/containerd/config.toml").unlink()
    break_commands(data, "w2", "systemctl restart containerd")

    body = {"nodes": workers, "extra_vars": {"clusterm_update_batch": 20}}
    job = run(client, "POST", "/update/nodes", body)

    assert job["status"] == "failed", log_tail(client, job["id"])
    assert job["error"].endswith("the rollout stopped after a failed batch; not touched: w3, w4")
    assert "w2" in job["error"].split("; the rollout stopped")[0]  # the failure's own text kept
    assert set(job["hosts"]) == {"w1", "w2"}
    assert states(client) == {
        "m1": "commissioned",
        "w1": "commissioned",
        "w2": "failed",
        "w3": "commissioned",
        "w4": "commissioned",
    }
    cluster = cordoned(data)
    assert [cluster[n] for n in ("w1", "w3", "w4")] == [False] * 3
    for name in ("w3", "w4"):
        # Nothing ran there: the change it was waiting for is still to do.
        assert not (root(data, name) / "etc/containerd/config.toml").exists()
        events = client.get(f"/info/node/{name}/history", params={"job": job["id"]}).json()
        reasons = [e["reason"] for e in reversed(events["items"])]
        assert reasons == ["StateChanged", "NotTouched"], reasons
    assert (root(data, "w1") / "etc/containerd/config.toml").exists()
