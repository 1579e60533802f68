"""The roles on their own and the precedence of their variables (ansible/README.md#variables),
with real ansible-playbook runs in the local-connection sandbox; and the pinned pod network."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from app.ansible import inventory
from tests.playbooks.conftest import ANSIBLE_PLAYBOOK, PLAYBOOK_DIR, PlaybookRun
from tests.playbooks.local_sandbox import FAST, Sandbox, write_playbook

PREPARE = """
- name: Prepare the nodes with the node_prepare role only
  hosts: targets
  gather_facts: false
  environment: "{{ clusterm_env }}"
  roles:
    - node_prepare
"""

CONTROL_PLANE = """
- name: The control plane alone
  hosts: masters
  gather_facts: false
  environment: "{{ clusterm_env }}"
  roles:
    - control_plane
"""

CLUSTER = """
- name: Prerequisites
  hosts: targets
  gather_facts: false
  environment: "{{ clusterm_env }}"
  roles:
    - node_prepare
    - containerd

- name: The control plane
  hosts: masters
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

IDENTITY = """
- name: The name check alone
  hosts: targets
  gather_facts: false
  environment: "{{ clusterm_env }}"
  roles:
    - node_identity
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


def apt_source(sandbox: Sandbox, name: str) -> str:
    """The repository node_prepare wrote on that node."""
    text = (sandbox.root(name) / "etc/apt/sources.list.d/kubernetes.list").read_text()
    return text.split("] ", 1)[1].split()[0]


def test_inventory_group_vars_host_vars_and_extra_vars_override_role_defaults(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    by_default = sandbox.host("by-default")
    by_group = sandbox.host("by-group")
    by_node = sandbox.host("by-node", clusterm_k8s_apt_repo="https://node.example/deb/")
    hosts = sandbox.inventory([by_default, by_group, by_node])
    # Group vars of `all` next to the inventory (clusterm writes none; a user's inventory may),
    # and a host_vars file (what a node var is, written by clusterm into the inventory itself).
    group_vars = hosts.parent / "group_vars"
    group_vars.mkdir()
    (group_vars / "all.yml").write_text(yaml.safe_dump({"clusterm_k8s_minor": "v1.30"}))
    host_vars = hosts.parent / "host_vars"
    host_vars.mkdir()
    (host_vars / "by-group.yml").write_text(
        yaml.safe_dump({"clusterm_k8s_apt_repo": "https://group.example/deb/"})
    )
    playbook = write_playbook(tmp_path / "mine", "prepare.yml", PREPARE)

    run = sandbox.run(playbook, hosts)

    assert run.outcome() == dict.fromkeys(["by-default", "by-group", "by-node"], "ok"), run.stdout
    # The role's default repository, templated with the minor version of the inventory's group
    # `all` (which overrides the role's default v1.31) ...
    assert apt_source(sandbox, "by-default") == "https://pkgs.k8s.io/core:/stable:/v1.30/deb/"
    # ... and a host var (a node var as clusterm writes it, or a host_vars file) replaces it.
    assert apt_source(sandbox, "by-group") == "https://group.example/deb/"
    assert apt_source(sandbox, "by-node") == "https://node.example/deb/"

    # An extra var (clusterm's settings, globals or a request) overrides the node vars.
    run = sandbox.run(playbook, hosts, clusterm_k8s_apt_repo="https://extra.example/deb/")

    assert run.outcome() == dict.fromkeys(["by-default", "by-group", "by-node"], "ok"), run.stdout
    for name in ("by-default", "by-group", "by-node"):
        assert apt_source(sandbox, name) == "https://extra.example/deb/"


def test_roles_alone_work_with_their_own_defaults(sandbox: Sandbox, tmp_path: Path) -> None:
    """A user's playbook with only clusterm's roles, away from clusterm's group_vars: the roles'
    defaults find the first master, its kubeconfig and the node roots by themselves. The values
    arrive as the daemon writes them (`!unsafe`), and the argument specs accept them."""
    master = sandbox.host("m1", inventory.MASTER)
    worker = sandbox.host("w1")
    playbook = write_playbook(tmp_path / "mine", "cluster.yml", CLUSTER)

    run = sandbox.run(
        playbook, sandbox.inventory([master, worker]), clusterm_cni_manifest_url="", **FAST
    )

    assert run.outcome() == {"m1": "ok", "w1": "ok"}, run.stdout[-4000:]
    # Each role checked its arguments against its spec first (the task's name goes on with the
    # role's description).
    validated = [
        (e["event_data"]["host"], e["event_data"]["role"])
        for e in run.events
        if e["event"] == "runner_on_ok"
        and e["event_data"]["task"].startswith("Validating arguments against arg spec 'main'")
    ]
    assert {role for host, role in validated if host == "m1"} == {
        "node_prepare",
        "containerd",
        "control_plane",
    }
    assert {role for host, role in validated if host == "w1"} == {
        "node_prepare",
        "containerd",
        "k8s_join",
    }
    nodes = sandbox.cluster_state()["nodes"]
    assert set(nodes) == {"m1", "w1"}
    assert nodes["m1"]["control_plane"]
    assert not nodes["w1"]["control_plane"]
    # An empty manifest URL: no pod network.
    assert not sandbox.cluster_state().get("applied")
    assert not (sandbox.root("m1") / "etc/kubernetes/clusterm-pod-network.yml").exists()


def test_a_role_alone_refuses_what_its_default_refuses_and_a_node_var_allows_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    strict = sandbox.host("strict", fqdn="ip-10-0-0-7.ec2.internal")
    allowed = sandbox.host(
        "allowed", fqdn="ip-10-0-0-8.ec2.internal", clusterm_allow_name_mismatch=True
    )
    playbook = write_playbook(tmp_path / "mine", "identity.yml", IDENTITY)

    run = sandbox.run(playbook, sandbox.inventory([strict, allowed]))

    assert run.outcome() == {"strict": "failed", "allowed": "ok"}, run.stdout
    assert run.failure("strict").startswith("NodeNameMismatch: ")


def test_argument_specs_refuse_a_value_of_the_wrong_type(sandbox: Sandbox, tmp_path: Path) -> None:
    """The role checks its inputs before it changes anything: the node fails, named by the spec."""
    node = sandbox.host("n1", clusterm_k8s_packages={"kubelet": "1.31"})
    playbook = write_playbook(tmp_path / "mine", "prepare.yml", PREPARE)

    run = sandbox.run(playbook, sandbox.inventory([node]))

    assert run.outcome() == {"n1": "failed"}, run.stdout
    assert "clusterm_k8s_packages" in run.failure("n1")
    assert not (sandbox.root("n1") / "etc/apt/sources.list.d/kubernetes.list").exists()


def test_a_shell_line_in_a_knob_is_refused_before_any_command(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """An admin's extra var reaches the join as data: its spec wants a number, so a command
    hidden in it fails the node by name before anything runs, and nothing executes it."""
    injected = tmp_path / "injected"
    master, worker = sandbox.host("m1", inventory.MASTER), sandbox.host("w1")

    run = sandbox.run(
        PLAYBOOK_DIR / "commission.yml",
        sandbox.inventory([master, worker]),
        clusterm_k8s_apt_repo="",
        clusterm_cni_manifest_url="",
        clusterm_join_poll=f"0.3; touch {injected}",
    )

    # The first master joins nobody; the worker's join refuses the knob before its first attempt.
    assert run.outcome() == {"m1": "ok", "w1": "failed"}, run.stdout[-3000:]
    assert "clusterm_join_poll" in run.failure("w1")
    assert not injected.exists()
    assert set(sandbox.cluster_state()["nodes"]) == {"m1"}


def last_failure(run: PlaybookRun, host: str) -> str:
    """The message of the host's last failed task, as the daemon reports it (a failure that a
    block's rescue handled comes before it)."""
    messages = [
        str(e["event_data"]["res"].get("msg", ""))
        for e in run.events
        if e["event"] == "runner_on_failed" and e["event_data"]["host"] == host
    ]
    assert messages, f"nothing failed on {host}:\n{run.stdout}"
    return messages[-1]


def manifest(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "kube-flannel.yml"
    path.write_text("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: kube-flannel-ds}\n")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_pinned_pod_network_is_applied_when_its_checksum_matches(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path, sha256 = manifest(tmp_path)
    master, worker = sandbox.host("m1", inventory.MASTER), sandbox.host("w1")

    run = sandbox.run(
        PLAYBOOK_DIR / "commission.yml",
        sandbox.inventory([master, worker]),
        clusterm_k8s_apt_repo="",
        clusterm_cni_version="v9.9.9",
        clusterm_cni_manifest_url=f"file://{path}",
        clusterm_cni_manifest_sha256=sha256.upper(),  # as `sha256sum` prints it, or not
        **FAST,
    )

    assert run.outcome() == {"m1": "ok", "w1": "ok"}, run.stdout[-4000:]
    kept = sandbox.root("m1") / "etc/kubernetes/clusterm-pod-network.yml"
    assert kept.read_bytes() == path.read_bytes()
    # kubectl applied that file, the one checked, once.
    assert sandbox.cluster_state()["applied"] == [str(kept)]


def test_a_pod_network_manifest_with_another_checksum_fails_the_commission(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path, sha256 = manifest(tmp_path)
    master, worker = sandbox.host("m1", inventory.MASTER), sandbox.host("w1")
    wrong = hashlib.sha256(b"another release").hexdigest()

    run = sandbox.run(
        PLAYBOOK_DIR / "commission.yml",
        sandbox.inventory([master, worker]),
        clusterm_k8s_apt_repo="",
        clusterm_cni_version="v9.9.9",
        clusterm_cni_manifest_url=f"file://{path}",
        clusterm_cni_manifest_sha256=wrong,
        **FAST,
    )

    assert run.outcome()["m1"] == "failed", run.stdout[-4000:]
    message = last_failure(run, "m1")
    assert "The pod network v9.9.9 was not installed" in message
    assert wrong in message  # what was expected
    assert sha256 in message  # what came
    assert "clusterm_cni_manifest_sha256" in message
    assert "sha256sum" in message
    assert not sandbox.cluster_state().get("applied")
    assert not (sandbox.root("m1") / "etc/kubernetes/clusterm-pod-network.yml").exists()
    # No control plane to join: nothing else joined.
    assert set(sandbox.cluster_state()["nodes"]) == {"m1"}


def test_a_checksum_that_is_no_sha256_is_refused_before_anything_changes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path, _ = manifest(tmp_path)
    master = sandbox.host("m1", inventory.MASTER)
    playbook = write_playbook(tmp_path / "mine", "control_plane.yml", CONTROL_PLANE)

    run = sandbox.run(
        playbook,
        sandbox.inventory([master]),
        clusterm_cni_manifest_url=f"file://{path}",
        clusterm_cni_manifest_sha256="latest",
    )

    assert run.outcome() == {"m1": "failed"}, run.stdout[-4000:]
    message = last_failure(run, "m1")
    assert "clusterm_cni_manifest_sha256 must be the SHA-256 of" in message
    assert 'not "latest"' in message
    # Refused before kubeadm init: no control plane half set up.
    assert not (sandbox.root("m1") / "etc/kubernetes").exists()
    assert not (sandbox.cluster_dir / "cluster.json").exists()


def test_control_plane_in_check_mode_says_what_it_would_do_and_does_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path, sha256 = manifest(tmp_path)
    master = sandbox.host("m1", inventory.MASTER)
    playbook = write_playbook(tmp_path / "mine", "control_plane.yml", CONTROL_PLANE)
    before = sorted(p.relative_to(sandbox.root("m1")) for p in sandbox.root("m1").rglob("*"))

    run = sandbox.run(
        playbook,
        sandbox.inventory([master]),
        check=True,
        clusterm_cni_manifest_url=f"file://{path}",
        clusterm_cni_manifest_sha256=sha256,
    )

    assert run.outcome() == {"m1": "ok"}, run.stdout[-4000:]
    # kubeadm init would run (its `creates:` path is absent), and the pod network would be
    # downloaded and applied: both say so, and nothing else claims a change. (kubeadm init's
    # result is censored, no_log, in the events: the play's output says it.)
    changed = re.findall(r"TASK \[control_plane : ([^\]]+)\] \**\nchanged:", run.stdout)
    assert changed == ["Initialise the control plane", "Say which pod network would be installed"]
    assert run.stats["m1"]["changed"] == 2
    said = run.results("Say which pod network would be installed")["m1"][0]["msg"]
    assert f"file://{path}" in said
    assert sha256 in said
    skipped = {e["event_data"]["task"] for e in run.events if e["event"] == "runner_on_skipped"}
    assert {
        "Download the pod network manifest v0.28.9",
        "Apply the pod network manifest",
    } <= skipped
    # Nothing ran: no cluster, no file on the node.
    assert (
        not (sandbox.cluster_dir / "cluster.json").exists() or not sandbox.cluster_state()["nodes"]
    )
    after = sorted(p.relative_to(sandbox.root("m1")) for p in sandbox.root("m1").rglob("*"))
    assert after == before


def test_the_pod_network_tasks_carry_the_cni_tag(sandbox: Sandbox, tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path / "mine", "control_plane.yml", CONTROL_PLANE)
    hosts = sandbox.inventory([sandbox.host("m1", inventory.MASTER)])
    listed = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(hosts), str(playbook), "--list-tasks", "--tags", "cni"],
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(PLAYBOOK_DIR / "roles")},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    tasks = [
        line.strip() for line in listed.splitlines() if line.startswith("      control_plane : ")
    ]
    # The argument check runs whatever the tags (`always`); every other task listed is tagged cni.
    assert all("TAGS: [cni]" in task or "TAGS: [always]" in task for task in tasks), listed
    assert any("Apply the pod network manifest" in task for task in tasks), listed
    assert not any("Initialise the control plane" in task for task in tasks), listed
