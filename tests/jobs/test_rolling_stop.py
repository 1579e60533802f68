"""A rolling update or decommission that stops after a failed batch: the nodes it never reached are
named in the job's error and go back to their state before the job, never failed. Real Ansible
with a small local playbook (tests/jobs/playbooks/rolling.yml: one host per batch); the shipped
playbooks in the sandbox: test_rolling_sandbox.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.jobs.ending import not_touched, untouched_text
from app.jobs.models import Job
from app.jobs.vocabulary import Kind, Status
from tests.jobs.conftest import job_settings, local_node, register, states, wait_finished

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    return job_settings(
        data_dir, db_url, update_playbook="rolling.yml", decommission_playbook="rolling.yml"
    )


def history(client: TestClient, name: str, job_id: int) -> list[dict[str, Any]]:
    """The node's events of one job, oldest first."""
    items = client.get(f"/info/node/{name}/history", params={"job": job_id}).json()["items"]
    return list(reversed(items))


def run_job(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    return wait_finished(client, response.json()["id"])


def commission(client: TestClient, *names: str, fail: tuple[str, ...] = ()) -> None:
    body = {"nodes": list(names), "extra_vars": {"fail_hosts": list(fail)}, "cleanup": False}
    run_job(client, "/commission/nodes", body)


def test_an_update_that_stops_names_the_nodes_it_never_reached(admin: TestClient) -> None:
    workers = [f"w{i}" for i in range(1, 6)]
    register(admin, local_node("m1", "master"), *(local_node(w) for w in workers))
    commission(admin, "m1", *workers)

    job = run_job(admin, "/update/nodes", {"nodes": workers, "extra_vars": {"fail_hosts": ["w2"]}})

    assert job["status"] == "failed"
    assert set(job["hosts"]) == {"w1", "w2"}  # the rollout stopped after w2's batch
    assert job["error"] == (
        "hosts failed: w2 (failed); the rollout stopped after a failed batch; "
        "not touched: w3, w4, w5"
    )
    assert states(admin) == {
        "m1": "commissioned",
        "w1": "commissioned",
        "w2": "failed",
        "w3": "commissioned",
        "w4": "commissioned",
        "w5": "commissioned",
    }
    for name in ("w3", "w4", "w5"):
        events = history(admin, name, job["id"])
        assert [(e["reason"], e["from_state"], e["to_state"]) for e in events] == [
            ("StateChanged", "commissioned", "updating"),
            ("NotTouched", "updating", "commissioned"),
        ]
        assert events[-1]["result"] == "canceled"
        assert "never reached this node" in events[-1]["note"]
    assert [e["reason"] for e in history(admin, "w2", job["id"])] == ["StateChanged", "HostFailed"]
    assert [e["reason"] for e in history(admin, "w1", job["id"])][-1] == "HostSucceeded"
    log = admin.get(f"/jobs/{job['id']}/log").json()["logs"]
    assert "not touched: w3, w4, w5" in log[-1]

    # The untouched nodes are updated as any commissioned node.
    again = run_job(admin, "/update/nodes", {"nodes": ["w3", "w4", "w5"]})
    assert again["status"] == "successful"
    assert again["error"] is None


def test_a_decommission_that_stops_puts_each_node_back_where_it_was(admin: TestClient) -> None:
    register(admin, local_node("m1", "master"), *(local_node(n) for n in ("c1", "c2", "f1")))
    commission(admin, "m1", "c1", "c2", "f1", fail=("f1",))
    assert states(admin)["f1"] == "failed"

    body = {"nodes": ["c1", "f1", "c2"], "extra_vars": {"fail_hosts": ["c1"]}}
    job = run_job(admin, "/decommission/nodes", body)

    assert job["status"] == "failed"
    assert job["error"].endswith("the rollout stopped after a failed batch; not touched: f1, c2")
    assert {n: s for n, s in states(admin).items() if n != "m1"} == {
        "c1": "failed",
        "c2": "commissioned",
        "f1": "failed",  # failed before the job, and the job never reached it
    }
    moves = [(e["reason"], e["from_state"], e["to_state"]) for e in history(admin, "f1", job["id"])]
    assert moves == [
        ("StateChanged", "failed", "decommissioning"),
        ("NotTouched", "decommissioning", "failed"),
    ]
    assert all(e["reason"] != "HostFailed" for e in history(admin, "c2", job["id"]))


def test_a_job_failed_on_every_node_it_ran_names_no_untouched_node(admin: TestClient) -> None:
    """A plain failure (every node in the recap) keeps today's settling: no rollout stop."""
    register(admin, local_node("m1", "master"), local_node("w1"))
    commission(admin, "m1", "w1")
    job = run_job(admin, "/update/nodes", {"nodes": ["w1"], "extra_vars": {"fail_hosts": ["w1"]}})
    assert job["error"] == "hosts failed: w1 (failed)"
    assert states(admin)["w1"] == "failed"


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("clusterm_update_batch", 1, 100), ("clusterm_max_fail_percentage", 0, 100)],
)
def test_the_rollout_knobs_are_an_operators_within_their_bounds(
    admin: TestClient, as_role: Any, name: str, low: int, high: int
) -> None:
    register(admin, local_node("m1", "master"))
    commission(admin, "m1")
    operator = as_role("operator")
    for value in (low - 1, high + 1, str(low), 50.0, True, None):
        body = {"nodes": ["m1"], "extra_vars": {name: value}}
        r = admin.post("/update/nodes", json=body, headers=operator)
        assert r.status_code == 422, (value, r.text)
        expected = f"extra var {name} must be an integer from {low} to {high}; got "
        assert r.json()["message"].startswith(expected)
        assert (r.json()["min"], r.json()["max"]) == (low, high)
    r = admin.post(
        "/update/nodes",
        json={"nodes": ["m1"], "extra_vars": {name: low}},
        headers=as_role("viewer"),
    )
    assert r.status_code == 403  # starting a job is an operator's
    assert len(admin.get("/jobs").json()) == 1  # the commission only: nothing was accepted
    for value in (low, high):
        r = admin.post(
            "/update/nodes", json={"nodes": ["m1"], "extra_vars": {name: value}}, headers=operator
        )
        assert r.status_code == 202, r.text
        assert wait_finished(admin, r.json()["id"])["status"] == "successful"


def test_which_nodes_count_as_not_touched() -> None:
    """Only a failed run that printed its recap, or a run that never started, tells which nodes
    nothing ran on; a kill (cancel, timeout, stop) leaves no recap to tell it by."""
    update = Job(kind=Kind.UPDATE, nodes=["w1", "w2", "w3"])
    ran = {"w1": {"ok": 2}, "w2": {"failed": 1}}
    assert not_touched(update, status=Status.FAILED, hosts=ran, ran=True) == ["w3"]
    assert not_touched(update, status=Status.FAILED, hosts={}, ran=True) == []
    for status in (Status.CANCELED, Status.TIMEOUT, Status.INTERRUPTED):
        assert not_touched(update, status=status, hosts=ran, ran=True) == []
        assert not_touched(update, status=status, hosts={}, ran=False) == ["w1", "w2", "w3"]
    for kind in (Kind.COMMISSION, Kind.CLEANUP, Kind.MAINTENANCE):
        job = Job(kind=kind, nodes=["w1", "w2", "w3"])
        assert not_touched(job, status=Status.FAILED, hosts=ran, ran=True) == []
    decommission = Job(kind=Kind.DECOMMISSION, nodes=["w1", "w2", "w3"])
    assert not_touched(decommission, status=Status.FAILED, hosts=ran, ran=True) == ["w3"]
    names = [f"n{i}" for i in range(12)]
    assert untouched_text(names, ran=True) == (
        "the rollout stopped after a failed batch; not touched: "
        "n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 2 more"
    )
    assert untouched_text(["n1"], ran=False) == "the playbook never started; not touched: n1"
