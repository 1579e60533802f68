"""A second run changes nothing: commission three sandbox nodes, then commission them again and
update them, and every host reports changed=0 in the recap (the node roles run their commands only
when a probe says the node needs them)."""

from __future__ import annotations

from pathlib import Path

from app.ansible import inventory
from tests.playbooks.conftest import PLAYBOOK_DIR, PlaybookRun
from tests.playbooks.local_sandbox import FAST, Sandbox

NO_CNI = {"clusterm_cni_manifest_url": ""}


def changed_tasks(run: PlaybookRun) -> dict[str, list[str]]:
    """Per host, the tasks (handlers too) that reported a change."""
    found: dict[str, list[str]] = {}
    for event in run.events:
        data = event.get("event_data", {})
        if event["event"] == "runner_on_ok" and data["res"].get("changed"):
            found.setdefault(data["host"], []).append(data["task"])
    return found


def test_a_second_commission_and_an_update_change_nothing(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox")
    nodes = [
        sandbox.host("m1", inventory.MASTER),
        sandbox.host("w1"),
        sandbox.host("w2"),
    ]
    hosts = sandbox.inventory(nodes)
    names = {n.name for n in nodes}

    first = sandbox.run(PLAYBOOK_DIR / "commission.yml", hosts, **FAST | NO_CNI)
    assert first.outcome() == dict.fromkeys(names, "ok"), first.stdout[-3000:]
    # The first run did change every node (a recap of zeros would prove nothing).
    assert all(first.stats[name]["changed"] > 0 for name in names)
    uids = {name: node["uid"] for name, node in sandbox.cluster_state()["nodes"].items()}
    assert set(uids) == names

    for playbook in ("commission.yml", "update.yml"):
        again = sandbox.run(PLAYBOOK_DIR / playbook, hosts, **FAST | NO_CNI)
        assert again.outcome() == dict.fromkeys(names, "ok"), again.stdout[-3000:]
        assert {name: again.stats[name]["changed"] for name in names} == dict.fromkeys(names, 0), (
            playbook,
            changed_tasks(again),
        )

    # Nothing was joined again, nothing restarted, the packages stayed held.
    state = sandbox.cluster_state()
    assert {name: node["uid"] for name, node in state["nodes"].items()} == uids
    assert state["joins"] == dict.fromkeys(names, 1)
    for name in names:
        host = (sandbox.root(name) / "var/lib/fakehost/host.json").read_text()
        assert '"restarts"' not in host
