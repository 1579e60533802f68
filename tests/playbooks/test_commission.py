"""The commission, decommission, update and discover playbooks over real SSH, against the fake
control plane."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.hosts.fixture import SshHosts
from tests.playbooks.conftest import run_playbook


def _host_state(root: Path) -> dict[str, Any]:
    """What the simulated apt-get and systemctl recorded on that node."""
    return dict(json.loads((root / "var/lib/fakehost/host.json").read_text()))


def test_commission_unreachable_decommission_recommission_update(ssh_hosts: SshHosts) -> None:
    # Two masters (the second joins as a control-plane node), a worker, and a worker that is down.
    master, m2, w2, down = ssh_hosts.start(4, masters=2)
    down.stop()

    run = run_playbook(ssh_hosts, "commission.yml", ssh_hosts.inventory([master, m2, w2, down]))

    # The stopped host is unreachable; the three others are commissioned all the same.
    assert run.outcome() == {
        "node1": "ok",
        "node2": "ok",
        "node3": "ok",
        "node4": "unreachable",
    }, run.stdout[-3000:]
    assert run.rc != 0
    nodes = ssh_hosts.cluster.nodes()
    assert set(nodes) == {"node1", "node2", "node3"}
    assert nodes["node1"]["control_plane"]
    assert nodes["node2"]["control_plane"]
    assert not nodes["node3"]["control_plane"]
    # What kubeadm needs was done on each node, inside its own root.
    for host in (master, m2, w2):
        state = _host_state(host.root)
        assert {"containerd", "kubeadm", "kubelet", "kubectl"} <= set(state["packages"])
        assert state["units"] == {
            "containerd": {"enabled": True, "active": True},
            "kubelet": {"enabled": True, "active": True},
        }
        assert "SystemdCgroup = true" in (host.root / "etc/containerd/config.toml").read_text()
        assert "# /swap.img none swap" in (host.root / "etc/fstab").read_text()
        assert (host.root / "etc/kubernetes/kubelet.conf").exists()
    assert (master.root / "etc/kubernetes/admin.conf").exists()
    assert (m2.root / "etc/kubernetes/admin.conf").exists()  # a control-plane node
    assert not (w2.root / "etc/kubernetes/admin.conf").exists()
    assert not (down.root / "etc").joinpath("containerd").exists()
    # Each worker's join was verified from the master, once.
    attempts = run.reports("join_attempt")
    assert {h: [r["outcome"] for r in rs] for h, rs in attempts.items()} == {
        "node2": ["joined"],
        "node3": ["joined"],
    }

    # Decommission a worker: drained and deleted from the master, reset on the node.
    run = run_playbook(ssh_hosts, "decommission.yml", ssh_hosts.inventory([w2], masters=[master]))
    assert run.outcome() == {"node3": "ok"}, run.stdout[-3000:]
    assert set(ssh_hosts.cluster.nodes()) == {"node1", "node2"}
    assert not (w2.root / "etc/kubernetes").exists()
    assert _host_state(w2.root)["units"]["kubelet"] == {"enabled": False, "active": False}
    assert (master.root / "etc/kubernetes/admin.conf").exists()  # the master was not touched

    # Re-commission it: it joins again, as a new Node.
    old_uid = nodes["node3"]["uid"]
    run = run_playbook(ssh_hosts, "commission.yml", ssh_hosts.inventory([w2], masters=[master]))
    assert run.outcome()["node3"] == "ok", run.stdout[-3000:]
    nodes = ssh_hosts.cluster.nodes()
    assert set(nodes) == {"node1", "node2", "node3"}
    assert nodes["node3"]["uid"] != old_uid
    assert ssh_hosts.cluster.joins("node3") == 2

    # Update re-applies the configuration, and re-joins only a node that dropped out of the cluster.
    ssh_hosts.cluster.delete_node("node3")  # behind clusterm's back
    (m2.root / "etc/containerd/config.toml").write_text("# hand-edited\n")
    uids = {name: node["uid"] for name, node in nodes.items()}
    run = run_playbook(ssh_hosts, "update.yml", ssh_hosts.inventory([m2, w2], masters=[master]))
    assert run.outcome() == {"node2": "ok", "node3": "ok"}, run.stdout[-3000:]
    nodes = ssh_hosts.cluster.nodes()
    assert nodes["node1"]["uid"] == uids["node1"]
    assert nodes["node2"]["uid"] == uids["node2"]  # still in: not joined again
    assert ssh_hosts.cluster.joins("node2") == 1
    assert nodes["node3"]["uid"] != uids["node3"]  # it had left: joined again, verified
    (attempt,) = run.reports("join_attempt")["node3"]
    assert attempt["outcome"] == "joined"
    assert "SystemdCgroup = true" in (m2.root / "etc/containerd/config.toml").read_text()


def test_discover_reports_reachable_hosts_and_their_facts(
    ssh_hosts: SshHosts, tmp_path: Path
) -> None:
    up, down = ssh_hosts.start(2)
    down.stop()
    # Discover knows addresses only: the inventory's host names are the addresses.
    inventory = tmp_path / "discover.yml"
    hosts = {
        h.address: {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": h.user}
        for h in (up, down)
    }
    inventory.write_text(json.dumps({"all": {"children": {"targets": {"hosts": hosts}}}}))

    run = run_playbook(ssh_hosts, "discover.yml", inventory, clusterm_job_kind="discover")

    assert run.outcome() == {up.address: "ok", down.address: "unreachable"}
    ((found,),) = run.reports("discovered").values()
    assert found["address"] == up.address
    assert found["python"].startswith("3.")
