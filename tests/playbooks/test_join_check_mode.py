"""The verified join in check mode (`--check --diff`), in the local-connection sandbox: it writes
nothing, says "would join" once for a node that is not in the cluster, makes no attempt, and copes
with a fresh cluster whose first master was only checked, not initialised."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.ansible import inventory
from tests.playbooks.conftest import PlaybookRun
from tests.playbooks.local_sandbox import DEMO_BIN, FAST, Commissioned, Sandbox, write_playbook

# The control plane and the join only: what a check of them would do, on nodes not even prepared.
JOIN = """
- name: The control plane
  hosts: masters:&targets
  gather_facts: false
  environment: "{{ clusterm_env }}"
  roles:
    - control_plane

- name: The verified join
  hosts: workers
  gather_facts: false
  environment: "{{ clusterm_env }}"
  roles:
    - k8s_join
"""

WOULD_JOIN = "Say that the node would join"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


def join_changes(run: PlaybookRun, host: str) -> list[str]:
    """The k8s_join tasks that changed (or would change) something on `host`."""
    return [
        e["event_data"]["task"]
        for e in run.events
        if e["event"] == "runner_on_ok"
        and e["event_data"].get("host") == host
        and e["event_data"].get("role") == "k8s_join"
        and e["event_data"]["res"].get("changed")
    ]


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def boot(host: inventory.Host) -> None:
    """Lay out the simulated machine's root as a fresh host (the demo does on its first command):
    what is there before anything ran, not a change of the run's."""
    env = {**os.environ, **host.vars["clusterm_env"]}
    subprocess.run([str(DEMO_BIN / "hostname"), "--fqdn"], env=env, check=True, capture_output=True)


def cluster(sandbox: Sandbox) -> dict[str, Any]:
    path = sandbox.cluster_dir / "cluster.json"
    return sandbox.cluster_state() if path.exists() else {}


def test_a_check_of_a_fresh_cluster_says_would_join_and_writes_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    master = sandbox.host("m1", inventory.MASTER)
    worker = sandbox.host("w1")
    playbook = write_playbook(tmp_path / "user", "join.yml", JOIN)
    before = {name: files_under(sandbox.root(name)) for name in ("m1", "w1")}

    run = sandbox.run(playbook, sandbox.inventory([master, worker]), check=True, **FAST)

    # The first master's kubeadm init only "would run": no control plane to ask, and no failure.
    assert run.outcome() == {"m1": "ok", "w1": "ok"}, run.stdout[-4000:]
    assert join_changes(run, "w1") == [WOULD_JOIN]
    assert "would join w1 to the cluster of m1" in run.stdout
    assert run.reports("join_attempt") == {}
    assert run.reports("join_result") == {}
    assert {name: files_under(sandbox.root(name)) for name in ("m1", "w1")} == before
    assert not cluster(sandbox).get("nodes")


def test_a_check_of_a_running_cluster_probes_it_and_changes_nothing(
    commissioned: Commissioned, tmp_path: Path
) -> None:
    # Commissioned by commission.yml, once for several tests (tests/playbooks/conftest.py).
    sandbox = commissioned.copy(
        tmp_path / "sandbox", ("m1", inventory.MASTER), ("w1", inventory.WORKER)
    )
    master = sandbox.host("m1", inventory.MASTER)
    joined = sandbox.host("w1")
    nodes = cluster(sandbox)["nodes"]
    assert set(nodes) == {"m1", "w1"}

    # w1 is in the cluster; w2 is not (and not even prepared: a check runs no kubeadm).
    new = sandbox.host("w2")
    boot(new)
    playbook = write_playbook(tmp_path / "user", "join.yml", JOIN)
    before = {name: files_under(sandbox.root(name)) for name in ("m1", "w1", "w2")}
    state = cluster(sandbox)

    run = sandbox.run(
        playbook, sandbox.inventory([joined, new], cluster_masters=[master]), check=True, **FAST
    )

    assert run.outcome() == {"w1": "ok", "w2": "ok"}, run.stdout[-4000:]
    assert join_changes(run, "w1") == []  # joined: nothing to do
    assert join_changes(run, "w2") == [WOULD_JOIN]
    assert run.reports("join_attempt") == {}
    # The read-only probe asked the control plane (it runs in check mode too).
    probes = run.results("Look for this node's Node object")
    assert probes["w1"][0]["rc"] == 0
    assert "NotFound" in probes["w2"][0]["stderr"]
    assert {name: files_under(sandbox.root(name)) for name in ("m1", "w1", "w2")} == before
    assert cluster(sandbox)["nodes"] == state["nodes"]
