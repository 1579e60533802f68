"""GET /support/bundle from a real app: real jobs (local Ansible), nodes, verbosity levels."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient

from app.runtime import runtime_of
from tests.jobs.conftest import LOCAL_VARS, local_node, wait_finished
from tests.support.conftest import open_bundle
from tests.verbosity.conftest import TOKEN
from tests.verbosity.emulator import Emulator


def run_job(admin: TestClient, nodes: list[str], **extra_vars: object) -> dict[str, object]:
    r = admin.post("/commission/nodes", json={"nodes": nodes, "extra_vars": extra_vars})
    assert r.status_code == 202, r.text
    return wait_finished(admin, r.json()["id"])


def bundle(client: TestClient | httpx.Client, **params: str) -> dict[str, bytes]:
    r = client.get("/support/bundle", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/gzip"
    assert 'attachment; filename="clusterm-support-' in r.headers["content-disposition"]
    return open_bundle(r.content)


def test_each_part_of_the_bundle(
    admin: TestClient, tokens: dict[str, str], emulators: Callable[..., Emulator]
) -> None:
    emulator = emulators()
    kubelet = emulator.add("w1", token=TOKEN)
    emulator.start()
    w1 = local_node(
        "w1", vars={**LOCAL_VARS, "clusterm_verbosity": {"kubelet": {"port": kubelet.port}}}
    )
    admin.post("/nodes", json=[local_node("m1", "master"), w1, local_node("w2")])
    ok = run_job(admin, ["m1", "w1"])
    failed = run_job(admin, ["w2"], fail_hosts=["w2"])
    assert (ok["status"], failed["status"]) == ("successful", "failed")
    r = admin.post("/verbosity?ttl=10m", json={"component": "kubelet", "nodes": ["w1"], "level": 4})
    assert r.status_code == 200, r.text
    assert admin.put("/debug/flags/v", content="3", params={"ttl": "5m"}).status_code == 200

    admin.headers["Authorization"] = f"Bearer {tokens['operator']}"
    files = bundle(admin, since="1h")
    readme = files["README.txt"].decode()
    for name in files:
        if name != "README.txt":
            assert f"- {name}" in readme, name
    assert "Cut or left out (over the size budget):\n- nothing" in readme
    assert "Could not be gathered:\n- nothing" in readme

    versions = json.loads(files["versions.json"])
    assert {"clusterm", "python", "ansible-core", "ansible-runner", "database"} <= set(versions)
    assert versions["replica"] == runtime_of(admin.app).identity.replica_id

    settings = json.loads(files["settings.json"])
    assert settings["job_dirs_kept"] == runtime_of(admin.app).settings.job_dirs_kept
    assert settings["verbosity_components"]["kubelet"]["token_file"] == "<redacted>"

    nodes = {n["name"]: n for n in json.loads(files["nodes.json"])}
    assert nodes["w1"]["state"] == "commissioned"
    assert set(nodes["w1"]["vars"]) >= {"ansible_connection", "clusterm_verbosity"}
    assert set(nodes["w1"]["vars"].values()) == {"<redacted>"}

    jobs = [name for name in files if name.startswith("jobs/")]
    assert sorted(jobs) == [
        "jobs/1/job.json",
        "jobs/1/log.txt",
        "jobs/2/job.json",
        "jobs/2/log.txt",
    ]
    job2 = json.loads(files["jobs/2/job.json"])
    assert (job2["id"], job2["status"], job2["nodes"]) == (2, "failed", ["w2"])
    assert "inputs" not in job2
    [w2] = job2["host_results"]
    assert (w2["host"], w2["failed"]) == ("w2", 1)
    assert w2["failed_tasks"][0]["task"] == "Fail on request"
    assert "asked to fail w2" in files["jobs/2/log.txt"].decode()
    assert "PLAY RECAP" in files["jobs/1/log.txt"].decode()

    verbosity = json.loads(files["verbosity.json"])
    assert verbosity["clusterm"]["level"] == 3
    assert verbosity["clusterm"]["reverts_at"] is not None
    [level] = verbosity["levels"]
    assert (level["component"], level["node"], level["level"]) == ("kubelet", "w1", 4)
    assert verbosity["pending_reverts"] == [level]

    drift = json.loads(files["drift.json"])
    assert drift["interval_s"] == runtime_of(admin.app).settings.drift_interval_s
    assert isinstance(drift["checks_newest_first"], list)

    events = [json.loads(line) for line in files["timeline.jsonl"].decode().splitlines()]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids), "oldest first"
    assert {"JobAccepted", "VerbositySet"} <= {e["reason"] for e in events}
    text = files["timeline.txt"].decode().splitlines()
    assert len(text) == len(events)
    assert all(
        line.endswith(f"id={e['id']}") or f"id={e['id']} " in line
        for line, e in zip(text, events, strict=True)
    )

    replica = runtime_of(admin.app).identity.replica_id
    own_log = files[f"logs/{replica.replace(':', '_')}.log"].decode()
    assert "set clusterm's own verbosity to V3" in own_log  # logged at V3, which the ring keeps
    replicas = json.loads(files["replicas.json"])
    assert [r["id"] for r in replicas] == [replica]

    # The download is on the audit trail.
    audit = admin.get("/info/timeline", params={"action": "support"}).json()["items"]
    assert audit[0]["reason"] == "BundleDownloaded"
    assert audit[0]["actor"] == "operator"


def test_a_viewer_gets_403_and_a_bad_window_is_422(
    client: TestClient, tokens: dict[str, str]
) -> None:
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    r = client.get("/support/bundle", headers=viewer)
    assert r.status_code == 403
    operator = {"Authorization": f"Bearer {tokens['operator']}"}
    r = client.get("/support/bundle", params={"since": "last tuesday"}, headers=operator)
    assert r.status_code == 422
    assert "since" in r.json()["message"]
