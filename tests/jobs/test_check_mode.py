"""Check mode as a job: the shipped playbooks with --check --diff on the sandbox's nodes, through a
real daemon. Nothing changes (no node state, no file of any node, no simulated cluster state), and
the job says per host what would change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs.sandbox import NAMES, Sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path)
    try:
        yield box
    finally:
        box.close()


def test_a_check_commission_says_what_it_would_do_and_changes_nothing(sandbox: Sandbox) -> None:
    before = sandbox.snapshot()
    job = sandbox.run("/commission/nodes", {"nodes": NAMES, "check": True})
    sandbox.assert_successful(job)
    assert job["check"] is True
    assert sandbox.states() == dict.fromkeys(NAMES, "registered")
    assert sandbox.snapshot() == before, "a check wrote under the nodes' roots or the cluster"

    # What would change, per host: the tasks that reported changed, named.
    assert set(job["would_change"]) == set(NAMES)
    for name in NAMES:
        assert job["hosts"][name]["changed"] > 0
        assert job["would_change"][name], f"{name} would change nothing? {job}"
    hosts = sandbox.client.get(f"/jobs/{job['id']}/hosts").json()
    assert hosts["job"]["check"] is True
    assert {h["host"]: h["would_change"] for h in hosts["hosts"]} == job["would_change"]
    text = sandbox.client.get(f"/jobs/{job['id']}", params={"format": "text"}).text
    assert "commission (check)" in text
    assert "check mode: nothing was changed" in text

    # The timeline says it was a check, and records no failure and no state change.
    events = sandbox.events(job["id"])
    reasons = [e["reason"] for e in events]
    assert "HostFailed" not in reasons
    assert "StateChanged" not in reasons
    assert "HostSucceeded" not in reasons
    for event in events:
        if event["reason"] in ("JobAccepted", "JobStarted", "JobSuccessful", "HostChecked"):
            assert event["details"]["check"] is True, event
            assert event["note"].startswith("check mode"), event
        assert event["from_state"] is None, event
        assert event["to_state"] is None, event
    checked = {e["node"]: e for e in events if e["reason"] == "HostChecked"}
    assert set(checked) == set(NAMES)
    assert all(e["result"] == "succeeded" for e in checked.values())

    # The log says so at its start and end.
    log = sandbox.log(job["id"])
    assert "[clusterm: check mode (ansible-playbook --check --diff)" in log
    assert f"[clusterm: job {job['id']} successful in check mode" in log

    # A check job is refused as the real one would be: an update of nodes not commissioned.
    refused = sandbox.client.post("/update/nodes", json={"nodes": NAMES[:1], "check": True})
    assert refused.status_code == 409, refused.text
    assert "registered" in refused.json()["message"]
    assert sandbox.client.get("/jobs", params={"limit": 5}).json()[0]["id"] == job["id"]


def test_after_a_commission_a_check_update_has_nothing_to_change(
    commissioned_sandbox: Sandbox,
) -> None:
    sandbox = commissioned_sandbox  # commissioned once for several tests (tests/conftest.py)
    assert sandbox.states() == dict.fromkeys(NAMES, "commissioned")
    before = sandbox.snapshot()

    job = sandbox.run("/update/nodes", {"nodes": NAMES, "check": True})
    sandbox.assert_successful(job)
    assert job["check"] is True
    assert job["would_change"] == {name: [] for name in NAMES}, job
    assert all(job["hosts"][name]["changed"] == 0 for name in NAMES), job["hosts"]
    # Still commissioned: a check update never passes through updating.
    assert sandbox.states() == dict.fromkeys(NAMES, "commissioned")
    assert sandbox.snapshot() == before
    checked = [e for e in sandbox.events(job["id"]) if e["reason"] == "HostChecked"]
    assert sorted(e["note"] for e in checked) == ["check mode: nothing to change"] * len(NAMES)
