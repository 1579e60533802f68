"""Tags in job requests: checked against the tags the shipped playbooks declare (a 422 before any
job exists), then given to ansible-playbook (--tags / --skip-tags) on the sandbox's nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from app.ansible.tags import declared_tags
from app.config import Settings
from clusterctl.main import run
from tests.jobs.conftest import job_settings, local_node
from tests.jobs.sandbox import NAMES, PLAYBOOK_DIR, Sandbox

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

# What the shipped playbooks declare (ansible/README.md): the daemon reads them from the files.
COMMISSION_TAGS = {"prepare", "swap", "kernel", "packages", "containerd", "control_plane", "cni"}
DECOMMISSION_TAGS = {"leave", "reset"}


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    return job_settings(
        data_dir,
        db_url,
        playbook_dir=PLAYBOOK_DIR,
        commission_playbook="commission.yml",
        update_playbook="update.yml",
        decommission_playbook="decommission.yml",
    )


def test_the_shipped_playbooks_declare_the_documented_tags() -> None:
    assert declared_tags(PLAYBOOK_DIR / "commission.yml") >= COMMISSION_TAGS | {"always"}
    # update re-applies the commission (with the cordon around a change): the same steps.
    assert declared_tags(PLAYBOOK_DIR / "update.yml") >= COMMISSION_TAGS
    assert declared_tags(PLAYBOOK_DIR / "decommission.yml") >= DECOMMISSION_TAGS


def refused(admin: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = admin.post(path, json=body)
    assert response.status_code == 422, response.text
    # Nothing stored: no job, no node moved.
    assert admin.get("/jobs").json() == []
    assert {n["state"] for n in admin.get("/info/nodes").json()} == {"registered"}
    return dict(response.json())


@pytest.fixture
def nodes(admin: TestClient) -> list[str]:
    response = admin.post("/nodes", json=[local_node("m1", "master"), local_node("w1")])
    assert response.status_code == 201, response.text
    return ["m1", "w1"]


def test_an_unknown_tag_is_a_422_listing_the_playbooks_tags(
    admin: TestClient, nodes: list[str]
) -> None:
    body = refused(admin, "/commission/nodes", {"nodes": nodes, "tags": ["packages", "pkgs"]})
    assert body["fields"][0]["field"] == "tags[1]"
    assert "'pkgs' is not a tag of the commission playbook (commission.yml)" in body["message"]
    assert set(body["declared_tags"]) >= COMMISSION_TAGS
    assert "always" not in body["declared_tags"]
    for tag in COMMISSION_TAGS:
        assert tag in body["message"]
    # Another kind's playbook declares other tags.
    body = refused(admin, "/decommission/nodes", {"nodes": nodes, "skip_tags": ["packages"]})
    assert body["fields"][0]["field"] == "skip_tags[0]"
    assert "decommission playbook" in body["message"]


@pytest.mark.parametrize("special", ["always", "never", "all", "tagged", "untagged"])
def test_no_tag_skips_the_name_check_or_the_join_verification(
    admin: TestClient, nodes: list[str], special: str
) -> None:
    body = refused(admin, "/update/nodes", {"nodes": nodes, "skip_tags": [special]})
    assert body["fields"][0]["field"] == "skip_tags[0]"
    message = body["message"]
    assert "special tags" in message
    assert "name check" in message
    assert "verification" in message
    assert "cordon/drain" in message
    assert "cannot be skipped" in message
    body = refused(admin, "/commission/nodes", {"nodes": nodes, "tags": [special], "check": True})
    assert body["fields"][0]["field"] == "tags[0]"


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        (["a,b"], "tags[0]", "is not a tag name"),
        (["x" * 65], "tags[0]", "is not a tag name"),
        (["-x"], "tags[0]", "starts with '-'"),
        (["--check"], "tags[0]", "starts with '-'"),
        ([""], "tags[0]", "is not a tag name"),
        (["packages"] * 21, "tags", "at most 20"),
        ("packages", "tags", "list"),
    ],
)
def test_malformed_tags_are_a_422_naming_the_field(
    admin: TestClient, nodes: list[str], value: Any, field: str, words: str
) -> None:
    body = refused(admin, "/update/nodes", {"nodes": nodes, "tags": value})
    assert body["fields"][0]["field"] == field
    assert words in body["fields"][0]["reason"]


def test_check_must_be_a_boolean(admin: TestClient, nodes: list[str]) -> None:
    body = refused(admin, "/commission/nodes", {"nodes": nodes, "check": "yes"})
    assert body["fields"][0]["field"] == "check"


# --- against a real daemon: the jobs run with the tags -------------------------------------------
# On the sandbox's nodes, commissioned once per session (commissioned_sandbox: tests/conftest.py).


def tasks_seen(box: Sandbox, job_id: int, host: str) -> set[str]:
    """The tasks the job's playbook took up on `host`, skipped ones too: a task its tags do not
    select is not even listed."""
    body = box.client.get(f"/jobs/{job_id}/hosts/{host}").json()
    return {t["task"] for t in body["tasks"]}


def tagged_tasks(role: str, tag: str) -> set[str]:
    """The names of the tasks of the role's tasks/main.yml that carry `tag`."""
    tasks = yaml.safe_load((PLAYBOOK_DIR / "roles" / role / "tasks" / "main.yml").read_text())
    found = {t["name"].split("  #")[0] for t in tasks if tag in (t.get("tags") or [])}
    assert found, f"no task of {role} is tagged {tag}"
    return found


def test_clusterctl_sends_check_and_tags(
    commissioned_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    box = commissioned_sandbox
    argv = ["--token", box.token, "nodes", "update", *NAMES]
    # A check first: it moves no node, whatever the next test does with them.
    code = run([*argv, "--check", "--tags", "containerd,packages", "--wait"], http=box.client)
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err
    assert "check mode: nothing will be changed" in err
    assert "runs as: update (check, tags containerd,packages)" in err
    assert " successful in check mode" in err
    job = box.client.get("/jobs", params={"limit": 1}).json()[0]
    assert job["check"] is True
    assert job["tags"] == ["containerd", "packages"]
    assert box.states() == dict.fromkeys(NAMES, "commissioned")

    assert run(["--token", box.token, "job", "list", "--limit", "1"], http=box.client) == 0
    assert "update (check, tags containerd,packages)" in capsys.readouterr().out

    code = run([*argv, "--skip-tags", "always"], http=box.client)
    _, err = capsys.readouterr()
    assert code != 0
    assert "skip_tags[0]" in err
    assert "cannot be skipped" in err
    assert box.client.get("/jobs", params={"limit": 1}).json()[0]["id"] == job["id"]


def test_an_update_with_tags_runs_only_those_steps(commissioned_sandbox: Sandbox) -> None:
    box = commissioned_sandbox
    packages = tagged_tasks("node_prepare", "packages")
    others = tagged_tasks("node_prepare", "swap") | tagged_tasks("node_prepare", "kernel")
    first = box.client.get("/jobs", params={"kind": "commission"}).json()[-1]
    assert packages | others <= tasks_seen(box, first["id"], NAMES[1])

    job = box.run("/update/nodes", {"nodes": NAMES, "tags": ["packages"]})
    box.assert_successful(job)
    assert job["tags"] == ["packages"]
    assert job["check"] is False
    for name in NAMES:
        seen = tasks_seen(box, job["id"], name)
        assert packages <= seen, packages - seen
        assert not seen & others, seen & others
    accepted = next(e for e in box.events(job["id"]) if e["reason"] == "JobAccepted")
    assert accepted["details"]["tags"] == ["packages"]
    assert accepted["note"].startswith("tags packages: update nodes")
    assert box.states() == dict.fromkeys(NAMES, "commissioned")
