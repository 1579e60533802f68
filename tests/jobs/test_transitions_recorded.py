"""Every lifecycle transition a job makes is on the timeline, with from and to state."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.jobs.conftest import local_node, wait_finished


def test_commission_records_each_node_transition(admin: TestClient) -> None:
    admin.post("/nodes", json=[local_node("m1", "master"), local_node("w1")])
    r = admin.post("/commission/nodes", json={"nodes": ["m1", "w1"]})
    assert r.status_code == 202, r.text
    job = wait_finished(admin, r.json()["id"])
    assert job["status"] == "successful"
    for name in ("m1", "w1"):
        items = admin.get(f"/info/node/{name}/history", params={"job": job["id"]}).json()["items"]
        moves = [(e["from_state"], e["to_state"]) for e in reversed(items) if e["to_state"]]
        assert moves == [("registered", "provisioning"), ("provisioning", "commissioned")], items
