"""Jobs through the HTTP API: what is accepted and refused (before any job exists), one at a time,
globals, roles, history. On SQLite and PostgreSQL; real Ansible (local connection) where a job
runs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import admin_client
from tests.jobs.conftest import local_node, register, states, wait_finished


def test_refused_requests_create_no_job_and_keep_the_last_log(admin: TestClient) -> None:
    register(admin, local_node("m1", "master"), local_node("w1"))
    first = admin.post("/commission/nodes", json={"nodes": ["m1"]}).json()
    wait_finished(admin, first["id"])
    before = admin.get("/info/job/last").json()

    cases = [
        ({"nodes": ["nope"]}, 404, "nope"),
        ({"nodes": ["m1"]}, 409, "commissioned"),  # already commissioned: the state machine says no
        ({"nodes": ["w1"], "extra_vars": [1, 2]}, 422, "extra_vars"),
        ({"nodes": ["w1"], "extra_vars": "not json"}, 422, "extra_vars"),
        ({"nodes": ["w1"], "extra_vars": {"bad name": 1}}, 422, "extra_vars"),
        ({"nodes": []}, 422, "nodes"),
        ({"nodes": ["w1", "w1"]}, 422, "twice"),
        ({"nodes": ["w1"], "host_group": "boss"}, 422, "host_group"),
        ({"nodes": ["w1"], "surprise": 1}, 422, "surprise"),
    ]
    for body, code, word in cases:
        response = admin.post("/commission/nodes", json=body)
        assert response.status_code == code, (body, response.text)
        assert word in response.json()["message"], (body, response.json())
    assert admin.post("/decommission/nodes", json={"nodes": ["w1"]}).status_code == 409
    assert admin.post("/update/nodes", json={"nodes": ["w1"]}).status_code == 409
    assert admin.post("/discover/nodes", json={"addrs": ["no such host!"]}).status_code == 422

    assert admin.get("/info/job/last").json() == before
    assert [j["id"] for j in admin.get("/jobs").json()] == [first["id"]]
    assert states(admin) == {"m1": "commissioned", "w1": "registered"}


def test_a_worker_needs_a_master_commissioned_or_in_the_same_job(admin: TestClient) -> None:
    register(admin, local_node("m1", "master"), local_node("w1"))
    refused = admin.post("/commission/nodes", json={"nodes": ["w1"]})
    assert refused.status_code == 409
    assert "no master" in refused.json()["message"]
    assert states(admin)["w1"] == "registered"
    # host_group in the request sets the node's group: w1 as a master needs no other master.
    job = admin.post("/commission/nodes", json={"nodes": ["w1"], "host_group": "service-master"})
    assert job.status_code == 202
    assert job.json()["host_group"] == "master"
    assert wait_finished(admin, job.json()["id"])["status"] == "successful"
    assert admin.get("/info/node/w1").json()["host_group"] == "master"


def test_one_job_at_a_time_under_fifty_concurrent_requests(admin: TestClient, as_role: Any) -> None:
    register(admin, local_node("m1", "master"))
    headers = as_role("operator")
    body = {"nodes": ["m1"], "extra_vars": {"sleep_s": 2}}

    def post(_: int) -> tuple[int, dict[str, Any]]:
        response = admin.post("/commission/nodes", json=body, headers=headers)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(post, range(50)))
    codes = sorted(code for code, _ in results)
    assert codes == [202] + [409] * 49
    accepted = next(body for code, body in results if code == 202)
    for code, refusal in results:
        if code == 409:
            assert refusal["job_id"] == accepted["id"]
            assert refusal["kind"] == "commission"
    assert len(admin.get("/jobs").json()) == 1
    wait_finished(admin, accepted["id"])


def test_no_job_yet_is_a_404_that_says_so(admin: TestClient) -> None:
    for which in ("active", "last"):
        response = admin.get(f"/info/job/{which}")
        assert response.status_code == 404
        assert "no job" in response.json()["message"]
    assert admin.get("/info/job/active/stream").status_code == 404
    assert admin.post("/info/job/active/cancel").status_code == 404
    assert admin.get("/jobs/99").status_code == 404


def test_globals_persist_and_layer_between_settings_and_request(data_dir: Any, db_url: str) -> None:
    from tests.jobs.conftest import job_settings

    settings = job_settings(
        data_dir, db_url, extra_vars={"marker": "settings", "layer": "settings"}
    )
    with admin_client(settings) as client:
        register(client, local_node("m1", "master"), local_node("w1"))

        def seen(body: dict[str, Any]) -> str:
            job = client.post("/commission/nodes", json=body).json()
            wait_finished(client, job["id"])
            text: str = client.get("/info/job/last", params={"format": "text"}).text
            return text.split("marker=")[1].split(" end")[0]

        assert client.get("/globals").json()["extra_vars"] == {}
        put = client.put("/globals", json={"extra_vars": {"marker": "globals"}})
        assert put.status_code == 200
        assert put.json()["updated_by"] == "admin"
        # globals win over settings (marker); what globals leave alone comes from settings (layer)
        assert seen({"nodes": ["m1"]}) == "globals layer=settings"
        # the request wins over globals; the original's JSON-string form is accepted
        body = {"nodes": ["w1"], "extra_vars": json.dumps({"marker": "request"})}
        assert seen(body) == "request layer=settings"
        assert client.put("/globals", json={"extra_vars": "[1]"}).status_code == 422
    # Persisted: a new daemon on the same data dir has them.
    with admin_client(settings) as client:
        assert client.get("/globals").json()["extra_vars"] == {"marker": "globals"}


def test_roles(client: TestClient, as_role: Any) -> None:
    body = {"nodes": ["x"]}
    for path in ("/commission/nodes", "/decommission/nodes", "/update/nodes"):
        assert client.post(path, json=body, headers=as_role("viewer")).status_code == 403
    assert client.post("/info/job/active/cancel", headers=as_role("viewer")).status_code == 403
    assert client.get("/globals", headers=as_role("operator")).status_code == 403
    assert (
        client.put("/globals", json={"extra_vars": {}}, headers=as_role("operator")).status_code
        == 403
    )
    assert client.get("/jobs", headers=as_role("viewer")).status_code == 200
    assert client.get("/jobs").status_code == 401


def test_update_decommission_and_paging(admin: TestClient) -> None:
    # (Re-commission, and all of it over SSH with the shipped playbooks: test_e2e_ssh.py.)
    register(admin, local_node("m1", "master"), local_node("w1"))
    ids = []
    for path, body, expected in [
        ("/commission/nodes", {"nodes": ["m1", "w1"]}, "commissioned"),
        ("/update/nodes", {"nodes": ["w1"]}, "commissioned"),
        ("/decommission/nodes", {"nodes": ["w1"]}, "decommissioned"),
    ]:
        response = admin.post(path, json=body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
        assert wait_finished(admin, ids[-1])["status"] == "successful"
        assert states(admin)["w1"] == expected
    text = admin.get("/info/job/last", params={"format": "text"}).text
    # A worker job sees the cluster's masters in `masters`, though it does not act on them.
    assert "decommission w1" in text
    assert "masters=m1" in text
    assert "update w1" not in text  # the last job only

    assert [j["id"] for j in admin.get("/jobs").json()] == ids[::-1]
    page = admin.get("/jobs", params={"limit": 1, "before_id": ids[-1]}).json()
    assert [j["id"] for j in page] == [ids[1]]
    assert admin.get(f"/jobs/{ids[1]}").json()["kind"] == "update"
    assert admin.get("/jobs", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize("path", ["/commission/nodes", "/update/nodes"])
def test_a_missing_playbook_is_refused_before_a_job_exists(
    path: str, data_dir: Any, db_url: str
) -> None:
    from tests.jobs.conftest import job_settings

    settings = job_settings(data_dir, db_url, commission_playbook="nope.yml", update_playbook="x")
    with admin_client(settings) as client:
        register(client, local_node("m1", "master"))
        response = client.post(path, json={"nodes": ["m1"]})
        assert response.status_code == 503
        assert "playbook" in response.json()["message"]
        assert client.get("/jobs").json() == []


def test_extra_vars_as_a_json_string_nested_beyond_the_parser_is_a_422(
    admin: TestClient, as_role: Any
) -> None:
    register(admin, local_node("m1", "master"))
    deep = "[" * 50_000 + "]" * 50_000  # deeper than json.loads can follow
    for path, body in [
        ("/commission/nodes", {"nodes": ["m1"]}),
        ("/discover/nodes", {"addrs": ["127.0.0.1"]}),
    ]:
        response = admin.post(path, json={**body, "extra_vars": deep}, headers=as_role("operator"))
        assert response.status_code == 422, response.text
        assert "not JSON" in response.json()["message"]
    put = admin.put("/globals", json={"extra_vars": deep})
    assert put.status_code == 422, put.text
    assert admin.get("/jobs").json() == []
