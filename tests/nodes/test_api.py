"""The node inventory through the real app: register, read, change, delete, maintenance."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db import Database
from app.nodes.models import Node
from tests.conftest import node_body


def node_count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Node)) or 0


def set_state(db: Database, name: str, state: str) -> None:
    with db.write() as session:
        session.execute(sa.update(Node).where(Node.name == name).values(state=state))


def test_register_one_node_and_read_it_back(admin: TestClient) -> None:
    r = admin.post("/nodes", json=node_body("n1", host_group="service-master", labels={"a": "b"}))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "n1"
    assert body["host_group"] == "master"  # the original clusterm's alias is accepted
    assert body["state"] == "registered"
    assert body["ssh_port"] == 22
    assert body["ssh_user"] == "root"
    got = admin.get("/info/node/n1").json()
    assert got == body
    assert [n["name"] for n in admin.get("/info/nodes").json()] == ["n1"]


def test_register_array_is_all_or_nothing(admin: TestClient, db: Database) -> None:
    admin.post("/nodes", json=node_body("n1"))
    r = admin.post("/nodes", json=[node_body("n2"), node_body("n1")])
    assert r.status_code == 409
    assert r.json()["error"] == "NodeExists"
    assert "n1" in r.json()["message"]
    assert node_count(db) == 1

    r = admin.post("/nodes", json=[node_body("n2"), node_body("n3", host_group="worker")])
    assert r.status_code == 201
    assert [n["name"] for n in r.json()] == ["n2", "n3"]
    assert node_count(db) == 3


def test_list_filters_by_state_and_group(admin: TestClient, db: Database) -> None:
    admin.post("/nodes", json=[node_body("m1", host_group="master"), node_body("w1")])
    set_state(db, "w1", "commissioned")
    assert [n["name"] for n in admin.get("/info/nodes?group=master").json()] == ["m1"]
    assert [n["name"] for n in admin.get("/info/nodes?state=commissioned").json()] == ["w1"]
    r = admin.get("/info/nodes?state=bogus")
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "state"


def test_unknown_node_is_404_with_a_message(admin: TestClient) -> None:
    r = admin.get("/info/node/n9")
    assert r.status_code == 404
    assert r.json() == {
        "error": "NodeNotFound",
        "message": "no node named 'n9'; list the nodes with GET /info/nodes",
        "node": "n9",
    }
    assert admin.patch("/nodes/n9", json={"ssh_port": 2222}).status_code == 404
    assert admin.delete("/nodes/n9").status_code == 404


def test_patch_changes_only_given_fields(admin: TestClient) -> None:
    admin.post("/nodes", json=node_body("n1", labels={"a": "b"}, vars={"x": 1}))
    before = admin.get("/info/node/n1").json()
    r = admin.patch("/nodes/n1", json={"ssh_port": 2222, "vars": {"y": [1, 2]}})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["ssh_port"] == 2222
    assert after["vars"] == {"y": [1, 2]}
    assert after["labels"] == {"a": "b"}
    assert after["updated_at"] > before["updated_at"]


def test_patch_refuses_null_and_state(admin: TestClient) -> None:
    admin.post("/nodes", json=node_body("n1"))
    r = admin.patch("/nodes/n1", json={"address": None})
    assert r.status_code == 422
    assert "address" in r.json()["message"]
    r = admin.patch("/nodes/n1", json={"state": "commissioned"})
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "state"
    assert admin.get("/info/node/n1").json()["state"] == "registered"


@pytest.mark.parametrize(
    "state", ["provisioning", "commissioned", "updating", "decommissioning", "maintenance"]
)
def test_delete_refused_while_in_cluster_or_job(
    admin: TestClient, db: Database, state: str
) -> None:
    admin.post("/nodes", json=node_body("n1"))
    set_state(db, "n1", state)
    r = admin.delete("/nodes/n1")
    assert r.status_code == 409
    assert state in r.json()["message"]
    assert node_count(db) == 1


@pytest.mark.parametrize("state", ["registered", "failed", "decommissioned"])
def test_delete_allowed_outside_the_cluster(admin: TestClient, db: Database, state: str) -> None:
    admin.post("/nodes", json=node_body("n1"))
    set_state(db, "n1", state)
    assert admin.delete("/nodes/n1").status_code == 204
    assert node_count(db) == 0


def test_host_group_cannot_change_while_commissioned(admin: TestClient, db: Database) -> None:
    admin.post("/nodes", json=node_body("n1"))
    set_state(db, "n1", "commissioned")
    r = admin.patch("/nodes/n1", json={"host_group": "master"})
    assert r.status_code == 409
    assert admin.get("/info/node/n1").json()["host_group"] == "worker"


def test_maintenance_is_refused_before_any_job_from_a_state_that_allows_none(
    admin: TestClient, db: Database
) -> None:
    """The move itself is a job (tests/jobs/test_maintenance.py); a refusal creates none."""
    admin.post("/nodes", json=node_body("n1"))
    r = admin.put("/nodes/n1/maintenance", json={"enabled": True})
    assert r.status_code == 409
    assert r.json() == {
        "error": "IllegalTransition",
        "message": "node 'n1' is registered: maintenance_on is not allowed from registered "
        "(allowed from registered: commission_start)",
        "node": "n1",
        "state": "registered",
        "transition": "maintenance_on",
    }
    set_state(db, "n1", "commissioned")
    r = admin.put("/nodes/n1/maintenance", json={"enabled": False})
    assert r.status_code == 409
    assert r.json()["transition"] == "maintenance_off"
    assert admin.get("/jobs").json() == []
    assert admin.get("/info/node/n1").json()["state"] == "commissioned"


def field_of(response: Any) -> str:
    return str(response.json()["fields"][0]["field"])


SECRETS = {
    "ansible_become_password": "hunter2-become",
    "registry_auth": {"user": "ci", "password": "hunter2-registry"},
    "clusterm_verbosity": {"kubelet": {"port": 11250}},
}


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_below_admin_var_values_are_redacted(admin: TestClient, as_role: Any, role: str) -> None:
    """Node vars hold become passwords and keys: a viewer or operator sees which vars a node has,
    never what they hold, on the list and on the node, JSON or through clusterctl's text."""
    admin.post("/nodes", json=node_body("n1", vars=SECRETS, labels={"zone": "a"}))
    headers = as_role(role)
    one = admin.get("/info/node/n1", headers=headers)
    listed = admin.get("/info/nodes", headers=headers)
    assert one.status_code == listed.status_code == 200
    for body in (one.json(), listed.json()[0]):
        assert body["vars"] == dict.fromkeys(SECRETS, "<redacted>")
        assert body["labels"] == {"zone": "a"}  # the rest of the node is shown as it is
        assert body["address"] == "127.0.0.1"
    for response in (one, listed, admin.get("/info/nodes?group=worker", headers=headers)):
        assert "hunter2" not in response.text
        assert "11250" not in response.text


def test_an_admin_sees_var_values(admin: TestClient) -> None:
    created = admin.post("/nodes", json=node_body("n1", vars=SECRETS))
    assert created.json()["vars"] == SECRETS
    assert admin.get("/info/node/n1").json()["vars"] == SECRETS
    assert admin.get("/info/nodes").json()[0]["vars"] == SECRETS
    changed = admin.patch("/nodes/n1", json={"vars": {"ansible_become_password": "new-one"}})
    assert changed.json()["vars"] == {"ansible_become_password": "new-one"}


def test_a_var_stored_before_the_depth_rule_does_not_break_the_inventory(
    admin: TestClient, db: Database
) -> None:
    assert admin.post("/nodes", json=node_body("n1", vars={"ok": 1})).status_code == 201
    deep: Any = "bottom"
    for _ in range(300):
        deep = [deep]
    with db.write() as session:  # as an older clusterm could store it
        session.execute(sa.update(Node).values(vars={"ok": 1, "deep": deep}))
    for path in ("/info/nodes", "/info/node/n1"):
        response = admin.get(path)
        assert response.status_code == 200, response.text
    shown = admin.get("/info/node/n1").json()["vars"]
    assert shown["ok"] == 1
    assert shown["deep"].startswith("<unreadable: deep")
    assert "PATCH /nodes/n1" in shown["deep"]
