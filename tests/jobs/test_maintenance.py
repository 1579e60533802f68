"""`PUT /nodes/{name}/maintenance` and `clusterctl node maintenance`: a job of kind maintenance,
whose playbook gets the request's body as clusterm_maintenance / clusterm_maintenance_drain, and
which moves the node only when it succeeds. Real Ansible with a local stand-in playbook
(tests/jobs/playbooks/maintenance.yml); the shipped playbook against the sandbox's simulated
cluster: test_rolling_sandbox.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from clusterctl.main import run
from tests.jobs.conftest import job_settings, local_node, register, states, wait_finished

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    return job_settings(data_dir, db_url, maintenance_playbook="maintenance.yml")


def commissioned(client: TestClient, *names: str) -> None:
    register(client, *(local_node(n, "master" if n.startswith("m") else "worker") for n in names))
    response = client.post("/commission/nodes", json={"nodes": list(names)})
    assert response.status_code == 202, response.text
    assert wait_finished(client, response.json()["id"])["status"] == "successful"


def maintenance(client: TestClient, name: str, **body: Any) -> dict[str, Any]:
    response = client.put(f"/nodes/{name}/maintenance", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert job["kind"] == "maintenance"
    assert job["nodes"] == [name]
    way = "on" if body["enabled"] else "off"
    assert job["desc"] == f"maintenance {way} nodes {name}" + (
        " (drain)" if body.get("drain") else ""
    )
    return wait_finished(client, job["id"])


def said(client: TestClient, job_id: int) -> str:
    """What the stand-in playbook printed about what it was asked."""
    logs = client.get(f"/jobs/{job_id}/log").json()["logs"]
    return str(next(line for line in logs if "maintenance=" in line))


def test_on_with_drain_then_off_move_the_node_when_the_job_succeeds(admin: TestClient) -> None:
    commissioned(admin, "m1", "w1")
    # The body decides, whatever the globals say: clusterm's own vars come last.
    assert admin.put("/globals", json={"extra_vars": {"clusterm_maintenance": False}}).is_success

    job = maintenance(admin, "w1", enabled=True, drain=True)
    assert job["status"] == "successful", job
    assert "w1 maintenance=True drain=True end" in said(admin, job["id"])
    assert states(admin)["w1"] == "maintenance"
    [event] = [
        e
        for e in admin.get("/info/node/w1/history", params={"job": job["id"]}).json()["items"]
        if e["reason"] == "MaintenanceOn"
    ]
    assert (event["action"], event["from_state"], event["to_state"]) == (
        "maintenance",
        "commissioned",
        "maintenance",
    )
    assert event["actor"] == "admin"
    assert event["details"]["drain"] is True

    job = maintenance(admin, "w1", enabled=False)
    assert job["status"] == "successful", job
    assert "w1 maintenance=False drain=False end" in said(admin, job["id"])
    assert states(admin)["w1"] == "commissioned"
    reasons = [e["reason"] for e in admin.get("/info/node/w1/history").json()["items"]]
    assert reasons.index("MaintenanceOff") < reasons.index("MaintenanceOn")  # newest first


def test_a_failed_maintenance_leaves_the_node_where_it_was(admin: TestClient) -> None:
    commissioned(admin, "m1", "w1")
    assert admin.put("/globals", json={"extra_vars": {"fail_hosts": ["w1"]}}).is_success

    job = maintenance(admin, "w1", enabled=True)
    assert job["status"] == "failed"
    assert states(admin)["w1"] == "commissioned"
    events = admin.get("/info/node/w1/history", params={"job": job["id"]}).json()["items"]
    [failed] = [e for e in events if e["reason"] == "HostFailed"]
    assert (failed["from_state"], failed["to_state"]) == (None, None)  # no move
    assert failed["details"]["reason"] == "TaskFailed"
    assert failed["details"]["maintenance"] == "MaintenanceOn"
    assert "asked to fail w1" in failed["note"]
    assert not [e for e in events if e["reason"] == "MaintenanceOn"]


def test_refusals_come_before_any_job(admin: TestClient) -> None:
    register(admin, local_node("w1"))
    r = admin.put("/nodes/w1/maintenance", json={"enabled": True})
    assert r.status_code == 409
    assert r.json()["transition"] == "maintenance_on"
    assert r.json()["state"] == "registered"
    assert "allowed from registered: commission_start" in r.json()["message"]

    r = admin.put("/nodes/w1/maintenance", json={"enabled": False, "drain": True})
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "drain"
    assert '{"enabled": false}' in r.json()["message"]

    assert admin.put("/nodes/ghost/maintenance", json={"enabled": True}).status_code == 404
    assert admin.put("/nodes/a%00b/maintenance", json={"enabled": True}).status_code == 404
    assert admin.get("/jobs").json() == []
    assert states(admin) == {"w1": "registered"}


def test_maintenance_vars_are_not_for_operators(admin: TestClient, as_role: Any) -> None:
    """An operator cannot reach the playbook's switch through a job's extra vars either."""
    register(admin, local_node("m1", "master"))
    body = {"nodes": ["m1"], "extra_vars": {"clusterm_maintenance": True}}
    r = admin.post("/update/nodes", json=body, headers=as_role("operator"))
    assert r.status_code == 403
    assert r.json()["variables"] == ["clusterm_maintenance"]


def test_clusterctl_node_maintenance_waits_for_the_job(
    admin: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    commissioned(admin, "m1", "w1")
    ctl = ["--token", tokens["admin"], "node", "maintenance", "w1"]
    capsys.readouterr()

    assert run([*ctl, "on", "--drain", "--wait"], http=admin) == 0
    out, err = capsys.readouterr()
    assert "accepted: maintenance on nodes w1 (drain)" in err  # as `nodes update` says it
    assert "w1 maintenance=True drain=True end" in out  # its log, followed
    assert states(admin)["w1"] == "maintenance"

    assert run([*ctl, "off", "--json"], http=admin) == 0
    job = json.loads(capsys.readouterr().out)
    assert (job["kind"], job["nodes"]) == ("maintenance", ["w1"])
    assert wait_finished(admin, job["id"])["status"] == "successful"
    assert states(admin)["w1"] == "commissioned"

    assert run([*ctl, "off", "--drain"], http=admin) == 2  # --drain goes with on
    assert "--drain" in capsys.readouterr().err
    assert run([*ctl, "off"], http=admin) == 1  # commissioned: nothing to take out
    assert "maintenance_off is not allowed from commissioned" in capsys.readouterr().err
