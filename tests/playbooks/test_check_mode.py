"""The node roles in check mode (`--check --diff`), and with tags, in the local-connection sandbox.

A check of fresh nodes says what would change (the files with their diffs, and the commands that
would run) and leaves every node's root and the simulated cluster byte for byte as they were; a
check of commissioned nodes reports nothing to change. `--tags packages` runs only the package
steps; `--skip-tags prepare` leaves the node's preparation alone."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.ansible import inventory
from tests.playbooks.conftest import PLAYBOOK_DIR
from tests.playbooks.local_sandbox import DEMO_BIN, FAST, NO_CNI, Commissioned, Sandbox
from tests.playbooks.test_idempotence import changed_tasks

COMMISSION = PLAYBOOK_DIR / "commission.yml"

# What the node roles would do on a fresh node: the files (shown with their diff) and the commands.
FILE_STEPS = {
    "Keep swap off after a reboot",
    "Load the container networking modules at boot",
    "Let bridged traffic through iptables and forward IPv4",
    "Add the Kubernetes apt repository's key",
    "Add the Kubernetes apt repository",
    "Configure containerd",
}
COMMAND_STEPS = {
    "Turn swap off now",
    "Load the container networking modules now",
    "Apply the sysctls",
    "Refresh the package lists",
    "Install the container runtime and the Kubernetes packages",
    "Hold the Kubernetes packages at their version",
    "Start containerd and the kubelet, now and at boot",
}
# In the order they run.
PACKAGE_STEPS = [
    "Refresh the package lists",
    "Install the container runtime and the Kubernetes packages",
    "Hold the Kubernetes packages at their version",
]


def fingerprint(*trees: Path) -> dict[str, str]:
    """Every file and directory under `trees`, with a hash of each file's bytes."""
    found = {}
    for tree in trees:
        for path in sorted(tree.rglob("*")):
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            found[str(path)] = digest
    return found


def shim(sandbox: Sandbox, name: str, *argv: str) -> str:
    """Run a simulated command on node `name`, as the playbooks would."""
    root = sandbox.root(name)
    env = {"FAKEHOST_ROOT": str(root), "FAKEHOST_FQDN": name, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(DEMO_BIN / argv[0]), *argv[1:]], env=env, capture_output=True, text=True, check=True
    ).stdout


def host_state(sandbox: Sandbox, name: str) -> dict[str, Any]:
    return dict(json.loads((sandbox.root(name) / "var/lib/fakehost/host.json").read_text()))


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


def test_a_check_of_fresh_nodes_says_what_would_change_and_changes_nothing(
    sandbox: Sandbox,
) -> None:
    nodes = [sandbox.host("m1", inventory.MASTER), sandbox.host("w1")]
    for node in nodes:
        shim(sandbox, node.name, "hostname")  # laid out like a fresh Debian host
    before = fingerprint(sandbox.cluster_dir, *(sandbox.root(n.name) for n in nodes))

    run = sandbox.run(COMMISSION, sandbox.inventory(nodes), check=True, **FAST | NO_CNI)

    assert run.outcome() == {"m1": "ok", "w1": "ok"}, run.stdout[-3000:]
    changed = changed_tasks(run)
    for node in nodes:
        assert set(changed[node.name]) >= FILE_STEPS | COMMAND_STEPS, changed[node.name]
    # The diffs of the files it would write.
    assert "+# /swap.img none swap sw 0 0  # disabled by clusterm" in run.stdout
    assert "+net.ipv4.ip_forward = 1" in run.stdout
    assert "+  SystemdCgroup = true" in run.stdout
    # Not a byte written: no node root, no simulated host state, no cluster.
    assert fingerprint(sandbox.cluster_dir, *(sandbox.root(n.name) for n in nodes)) == before
    assert not (sandbox.root("m1") / "var/lib/fakehost/host.json").exists()
    assert not (sandbox.cluster_dir / "cluster.json").exists()


def test_commissioned_nodes_check_clean_and_tags_select_the_steps(
    commissioned: Commissioned, tmp_path: Path
) -> None:
    sandbox = commissioned.copy(
        tmp_path / "sandbox", ("m1", inventory.MASTER), ("w1", inventory.WORKER)
    )
    nodes = [sandbox.host("m1", inventory.MASTER), sandbox.host("w1")]
    hosts = sandbox.inventory(nodes)
    trees = (sandbox.cluster_dir, sandbox.root("m1"), sandbox.root("w1"))
    before = fingerprint(*trees)

    # A check of commissioned nodes: nothing to change, nothing changed.
    run = sandbox.run(COMMISSION, hosts, check=True, **FAST | NO_CNI)
    assert run.outcome() == {"m1": "ok", "w1": "ok"}, run.stdout[-3000:]
    assert {h: s["changed"] for h, s in run.stats.items()} == {"m1": 0, "w1": 0}, changed_tasks(run)
    assert fingerprint(*trees) == before

    # Drift on w1, behind clusterm's back: a package gone, swap back on, containerd hand-edited.
    shim(sandbox, "w1", "apt-get", "purge", "-y", "--allow-change-held-packages", "kubectl")
    shim(sandbox, "w1", "swapon", "/swap.img")
    config = sandbox.root("w1") / "etc/containerd/config.toml"
    config.write_text("# hand-edited\n")

    # A check names each of them, and touches none.
    drifted = fingerprint(*trees)
    run = sandbox.run(COMMISSION, hosts, check=True, **FAST | NO_CNI)
    assert set(changed_tasks(run)["w1"]) == {
        "Turn swap off now",
        *PACKAGE_STEPS,
        "Configure containerd",
        "Restart containerd",
    }, run.stdout[-3000:]
    assert run.stats["m1"]["changed"] == 0
    assert "-# hand-edited" in run.stdout
    assert fingerprint(*trees) == drifted

    # From here, jobs on w1 alone, m1 the cluster's master (a job with the first master in it and
    # control_plane skipped would leave the workers no control plane to join).
    w1_only = sandbox.inventory([nodes[1]], [nodes[0]])

    # --tags packages: the package steps only (and the name check and the join, which no tag
    # skips: nothing for them to do here).
    run = sandbox.run(COMMISSION, w1_only, tags="packages", **FAST | NO_CNI)
    assert run.outcome() == {"w1": "ok"}, run.stdout[-3000:]
    assert changed_tasks(run) == {"w1": PACKAGE_STEPS}
    assert {"kubectl", "kubelet", "kubeadm"} <= set(host_state(sandbox, "w1")["held"])
    assert shim(sandbox, "w1", "swapon", "--show", "--noheadings").strip()  # swap: not this tag
    assert config.read_text() == "# hand-edited\n"

    # --skip-tags prepare (ansible-playbook's own setting for it): containerd is put back and
    # restarted, swap is still on.
    run = sandbox.run(COMMISSION, w1_only, skip_tags="prepare", **FAST | NO_CNI)
    assert run.outcome() == {"w1": "ok"}, run.stdout[-3000:]
    assert changed_tasks(run) == {"w1": ["Configure containerd", "Restart containerd"]}
    assert "SystemdCgroup = true" in config.read_text()
    assert host_state(sandbox, "w1")["units"]["containerd"]["restarts"] == 1
    assert shim(sandbox, "w1", "swapon", "--show", "--noheadings").strip()

    # The whole playbook: only swap was left to do.
    run = sandbox.run(COMMISSION, w1_only, **FAST | NO_CNI)
    assert changed_tasks(run) == {"w1": ["Turn swap off now"]}, run.stdout[-3000:]
    assert not shim(sandbox, "w1", "swapon", "--show", "--noheadings").strip()


def test_the_simulated_host_answers_probes_and_fails_on_demand(sandbox: Sandbox) -> None:
    """The sandbox's read-only commands answer as the real ones (the probes parse them), and a
    line in var/lib/fakehost/fail makes the commands it names fail."""
    sandbox.host("n1")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        root = sandbox.root("n1")
        env = {"FAKEHOST_ROOT": str(root), "FAKEHOST_FQDN": "n1", "PATH": "/usr/bin:/bin"}
        return subprocess.run(
            [str(DEMO_BIN / argv[0]), *argv[1:]], env=env, capture_output=True, text=True
        )

    status = ["dpkg-query", "-W", "-f=${Package} ${Status}\\n", "kubelet", "containerd"]
    missing = run(*status)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "dpkg-query: no packages found matching kubelet" in missing.stderr
    assert run("swapon", "--show", "--noheadings").stdout.split()[0] == "/swap.img"
    assert run("systemctl", "is-enabled", "kubelet").returncode == 1  # no such unit yet

    run("apt-get", "install", "-y", "kubelet", "containerd")
    run("apt-mark", "hold", "kubelet")
    run("systemctl", "enable", "--now", "kubelet")
    run("swapoff", "-a")
    found = run(*status)
    assert (found.returncode, found.stdout) == (
        0,
        "kubelet hold ok installed\ncontainerd install ok installed\n",
    )
    assert run("apt-mark", "showhold").stdout == "kubelet\n"
    active = run("systemctl", "is-active", "kubelet", "containerd")
    assert (active.returncode, active.stdout) == (0, "active\ninactive\n")
    assert run("systemctl", "is-active", "--quiet", "containerd").returncode == 3
    assert run("swapon", "--show", "--noheadings").stdout == ""
    # apt keeps a held package unless told otherwise.
    refused = run("apt-get", "purge", "-y", "kubelet")
    assert refused.returncode == 100
    assert "--allow-change-held-packages" in refused.stderr

    # A simulated failure: only the commands a line names, with the reason on stderr.
    (sandbox.root("n1") / "var/lib/fakehost/fail").write_text("systemctl restart\n")
    failed = run("systemctl", "restart", "kubelet")
    assert failed.returncode == 1
    assert failed.stderr == (
        "fakehost: systemctl restart failed (simulated by var/lib/fakehost/fail)\n"
    )
    assert "restarts" not in host_state(sandbox, "n1")["units"]["kubelet"]
    assert run("systemctl", "is-active", "kubelet").returncode == 0
