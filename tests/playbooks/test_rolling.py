"""Rolling update, maintenance and batched decommission, in the local-connection sandbox: masters
one at a time, then workers in batches; a node is cordoned and drained only when a disruptive change
is pending, and uncordoned after; a batch that fails stops the rollout, the rest of it untouched."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from app.ansible import inventory
from tests.playbooks.conftest import PLAYBOOK_DIR, PlaybookRun
from tests.playbooks.local_sandbox import FAST, NO_CNI, Commissioned, Sandbox


def _commissioned(
    commissioned: Commissioned, base: Path, masters: int, workers: int
) -> tuple[Sandbox, list[inventory.Host], list[inventory.Host]]:
    """A commissioned cluster of its own: node1... the masters, then the workers."""
    groups = [inventory.MASTER] * masters + [inventory.WORKER] * workers
    names = [(f"node{i + 1}", group) for i, group in enumerate(groups)]
    sandbox = commissioned.copy(base / "sandbox", *names)
    hosts = [sandbox.host(name, group) for name, group in names]
    return sandbox, hosts[:masters], hosts[masters:]


def _run(
    sandbox: Sandbox,
    playbook: str,
    targets: list[inventory.Host],
    *,
    cluster_masters: list[inventory.Host] | None = None,
    check: bool = False,
    **extra_vars: Any,
) -> PlaybookRun:
    """`cluster_masters`: the masters in the cluster (default: the targets' masters)."""
    masters = [h for h in targets if h.host_group == inventory.MASTER]
    return sandbox.run(
        PLAYBOOK_DIR / playbook,
        sandbox.inventory(targets, cluster_masters if cluster_masters is not None else masters),
        check=check,
        **FAST | NO_CNI | extra_vars,
    )


def _drop_containerd_config(sandbox: Sandbox, hosts: list[inventory.Host]) -> None:
    """A pending disruptive change: containerd must be reconfigured and restarted."""
    for host in hosts:
        (sandbox.root(host.name) / "etc/containerd/config.toml").unlink()


def _cordon_events(sandbox: Sandbox) -> list[tuple[str, str]]:
    """(node, cordoned|uncordoned), in the order the control plane saw them."""
    return [
        (
            e["involvedObject"]["name"],
            {"NodeNotSchedulable": "cordoned"}.get(e["reason"], "uncordoned"),
        )
        for e in sandbox.cluster_state()["events"]
        if e["reason"] in ("NodeNotSchedulable", "NodeSchedulable")
    ]


def _cordoned(sandbox: Sandbox) -> dict[str, bool]:
    return {n: node["unschedulable"] for n, node in sandbox.cluster_state()["nodes"].items()}


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_failing_batch_stops_the_rollout(commissioned: Commissioned, tmp_path: Path) -> None:
    sandbox, [m1], workers = _commissioned(commissioned, tmp_path, masters=1, workers=4)
    n4, n5 = workers[2:]
    _drop_containerd_config(sandbox, [m1, *workers])
    # node3 fails in the second batch (node1 alone, then node2 + node3, then node4 + node5).
    (sandbox.root("node3") / "var/lib/fakehost/fail").write_text("systemctl\n")
    untouched = {h.name: _files(sandbox.root(h.name)) for h in (n4, n5)}

    run = _run(sandbox, "update.yml", [m1, *workers], clusterm_update_batch=50)

    # The rollout stopped after the second batch: node4 and node5 never ran.
    assert run.outcome() == {"node1": "ok", "node2": "ok", "node3": "failed"}, run.stdout[-4000:]
    assert run.rc != 0
    for host in (n4, n5):
        assert _files(sandbox.root(host.name)) == untouched[host.name]
    # node2, in the failing batch, finished its update: the failure was held to the batch's end.
    for name in ("node1", "node2"):
        config = sandbox.root(name) / "etc/containerd/config.toml"
        assert "SystemdCgroup = true" in config.read_text()
    stats = run.stats
    assert stats["node3"]["rescued"] == 1
    assert stats["node3"]["failures"] == 1
    # The failed node is named with its cause, at the end of its batch.
    final = run.results("Fail the node at the end of its batch")
    assert list(final) == ["node3"]
    message = final["node3"][0]["msg"]
    assert "fakehost: systemctl failed" in message, message
    assert "(task: " in message, message  # which step of its update failed
    # The updated nodes are uncordoned again; the failed node stays cordoned; the untouched ones
    # were never cordoned.
    assert _cordoned(sandbox) == {
        "node1": False,
        "node2": False,
        "node3": True,
        "node4": False,
        "node5": False,
    }
    events = _cordon_events(sandbox)
    assert events[:2] == [("node1", "cordoned"), ("node1", "uncordoned")]
    # The second batch's two nodes ran side by side: their events interleave in any order.
    assert sorted(events[2:]) == [
        ("node2", "cordoned"),
        ("node2", "uncordoned"),
        ("node3", "cordoned"),
    ]
    assert events.index(("node2", "cordoned")) < events.index(("node2", "uncordoned"))


def test_masters_one_at_a_time_then_workers_then_nothing_to_do(
    commissioned: Commissioned, tmp_path: Path
) -> None:
    sandbox, masters, workers = _commissioned(commissioned, tmp_path, masters=2, workers=1)
    hosts = masters + workers
    _drop_containerd_config(sandbox, hosts)

    run = _run(sandbox, "update.yml", hosts)
    assert run.outcome() == {h.name: "ok" for h in hosts}, run.stdout[-4000:]
    # Each node cordoned, updated, uncordoned before the next one starts; masters first.
    assert _cordon_events(sandbox) == [
        (name, change)
        for name in ("node1", "node2", "node3")
        for change in ("cordoned", "uncordoned")
    ]
    assert not any(_cordoned(sandbox).values())
    for host in hosts:
        config = sandbox.root(host.name) / "etc/containerd/config.toml"
        assert "SystemdCgroup = true" in config.read_text()

    # Nothing pending: no cordon, nothing changed.
    run = _run(sandbox, "update.yml", hosts)
    assert {h: s["changed"] for h, s in run.stats.items()} == {h.name: 0 for h in hosts}, (
        run.stdout[-4000:]
    )
    assert len(_cordon_events(sandbox)) == 6


def test_check_mode_cordons_nothing(commissioned: Commissioned, tmp_path: Path) -> None:
    # The cluster of the other tests here (one commission for all), updated on two of its nodes.
    sandbox, [m1], workers = _commissioned(commissioned, tmp_path, masters=1, workers=4)
    hosts = [m1, workers[0]]
    _drop_containerd_config(sandbox, hosts)

    run = _run(sandbox, "update.yml", hosts, check=True)

    assert run.outcome() == {h.name: "ok" for h in hosts}, run.stdout[-4000:]
    # It says it would cordon each node, and cordons none, changes none.
    cordon = run.results("Cordon the node")
    assert {h: [r["changed"] for r in rs] for h, rs in cordon.items()} == {
        "node1": [True],
        "node2": [True],
    }
    assert _cordon_events(sandbox) == []
    assert not any(_cordoned(sandbox).values())
    for host in hosts:
        assert not (sandbox.root(host.name) / "etc/containerd/config.toml").exists()


def test_maintenance_and_decommission_in_batches(
    commissioned: Commissioned, tmp_path: Path
) -> None:
    sandbox, masters, workers = _commissioned(commissioned, tmp_path, masters=1, workers=4)

    def maintenance(**extra_vars: Any) -> PlaybookRun:
        return _run(sandbox, "maintenance.yml", [workers[0]], cluster_masters=masters, **extra_vars)

    run = maintenance(clusterm_maintenance=True, check=True)
    assert run.stats["node2"]["changed"] == 1, run.stdout[-3000:]
    assert _cordoned(sandbox)["node2"] is False

    run = maintenance(clusterm_maintenance=True)
    assert run.stats["node2"]["changed"] == 1, run.stdout[-3000:]
    assert _cordoned(sandbox)["node2"] is True
    assert run.results("Cordon the node")["node2"][0]["stdout"] == "node/node2 cordoned"

    # Again, with a drain: already cordoned, nothing to evict: unchanged.
    run = maintenance(clusterm_maintenance=True, clusterm_maintenance_drain=True)
    assert run.stats["node2"]["changed"] == 0, run.stdout[-3000:]
    assert run.results("Drain the node")["node2"][0]["stdout_lines"] == [
        "node/node2 already cordoned",
        "node/node2 drained",
    ]
    assert _cordoned(sandbox)["node2"] is True

    run = maintenance(clusterm_maintenance=False)
    assert run.stats["node2"]["changed"] == 1, run.stdout[-3000:]
    assert _cordoned(sandbox)["node2"] is False
    run = maintenance(clusterm_maintenance=False)
    assert run.stats["node2"]["changed"] == 0, run.stdout[-3000:]

    # Drain a schedulable node: cordoned, then drained.
    run = maintenance(clusterm_maintenance=True, clusterm_maintenance_drain=True)
    assert run.stats["node2"]["changed"] == 1, run.stdout[-3000:]
    assert _cordoned(sandbox)["node2"] is True
    run = maintenance(clusterm_maintenance=False)
    assert _cordoned(sandbox)["node2"] is False

    # A request without the switch is refused before anything runs.
    run = maintenance()
    assert "clusterm_maintenance must be true" in run.failure("node2")

    # A node an operator cordoned stays cordoned through an update that cordons it too.
    run = maintenance(clusterm_maintenance=True)
    _drop_containerd_config(sandbox, [workers[0]])
    run = _run(sandbox, "update.yml", [workers[0]], cluster_masters=masters)
    assert run.outcome() == {"node2": "ok"}, run.stdout[-3000:]
    assert run.results("Cordon the node") == {}  # already cordoned: nothing to do
    assert _cordoned(sandbox)["node2"] is True
    run = maintenance(clusterm_maintenance=False)
    assert _cordoned(sandbox)["node2"] is False

    # Decommission the four workers and the master: workers in batches of one (the default 20 %),
    # the master last, each Node deleted from the master while it still answers.
    run = _run(sandbox, "decommission.yml", workers + masters)
    assert run.outcome() == {h.name: "ok" for h in workers + masters}, run.stdout[-4000:]
    assert sandbox.cluster_state()["nodes"] == {}
    reset_order = [
        e["event_data"]["host"]
        for e in run.events
        if e["event"] == "runner_on_ok" and e["event_data"].get("task") == "Note that the node left"
    ]
    assert reset_order == ["node2", "node3", "node4", "node5", "node1"]
    for host in workers + masters:
        assert not (sandbox.root(host.name) / "etc/kubernetes").exists()


def test_an_unreachable_node_stops_the_rollout_as_a_failed_one_does(
    commissioned: Commissioned, tmp_path: Path
) -> None:
    """Ansible's max_fail_percentage counts no unreachable host: the playbook makes it a failure."""
    sandbox, [m1], workers = _commissioned(commissioned, tmp_path, masters=1, workers=4)
    _drop_containerd_config(sandbox, [m1, *workers])
    # node3 is now behind SSH on a port where nothing listens: it does not answer.
    dead = sandbox.host("node3", ansible_connection="ssh", ansible_port=1)

    run = _run(
        sandbox, "update.yml", [m1, workers[0], dead, *workers[2:]], clusterm_update_batch=50
    )

    # Batches: node1; node2 + node3; then node4 + node5, which never ran.
    assert set(run.outcome()) == {"node1", "node2", "node3"}, run.stdout[-4000:]
    assert run.outcome()["node3"] == "failed"
    assert run.outcome()["node2"] == "ok"
    message = run.results("Fail the node at the end of its batch")["node3"][0]["msg"]
    assert message.startswith("the node did not answer"), message
    assert _cordoned(sandbox)["node4"] is False
    assert not (sandbox.root("node4") / "etc/containerd/config.toml").exists()


def test_an_update_limited_to_the_packages_tag_still_drains_before_installing(
    commissioned: Commissioned, tmp_path: Path
) -> None:
    # The cluster of the other tests here (one commission for all), updated on two of its nodes.
    sandbox, [m1], [w1, *_] = _commissioned(commissioned, tmp_path, masters=1, workers=4)
    root = sandbox.root(w1.name)
    env = {"FAKEHOST_ROOT": str(root), "FAKEHOST_FQDN": w1.name, "PATH": "/usr/bin:/bin"}
    apt_get = str(PLAYBOOK_DIR / "demo" / "bin" / "apt-get")
    purge = [apt_get, "purge", "-y", "--allow-change-held-packages", "kubectl"]
    subprocess.run(purge, env=env, check=True, capture_output=True)

    run = sandbox.run(
        PLAYBOOK_DIR / "update.yml",
        sandbox.inventory([m1, w1], [m1]),
        tags="packages",
        **FAST | NO_CNI,
    )

    assert run.outcome() == {"node1": "ok", "node2": "ok"}, run.stdout[-4000:]
    # The package came back, on a node drained for it, and uncordoned after.
    assert _cordon_events(sandbox) == [("node2", "cordoned"), ("node2", "uncordoned")]
    assert "kubectl" in json.loads((root / "var/lib/fakehost/host.json").read_text())["packages"]
