"""Playbooks in the local-connection sandbox of ansible/demo (no SSH): each node is this machine,
with its own root directory and the simulated kubeadm/kubectl/apt-get/systemctl first on PATH,
all sharing one simulated control plane. The inventory is clusterm's own (app.ansible.inventory),
and the extra vars reach ansible-playbook as the daemon writes them, every string `!unsafe`.

A commissioned cluster is built once per test run (`Commissioned`) and copied for each test that
needs one: a commission is most of such a test's time, and nothing in a sandbox names its own
directory, so a copy is the same cluster (the build checks it)."""

from __future__ import annotations

import fcntl
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ansible_runner

from app.ansible import inventory
from app.ansible.runner import write_extra_vars
from tests.playbooks.conftest import PLAYBOOK_DIR, PlaybookRun

DEMO_BIN = PLAYBOOK_DIR / "demo" / "bin"
DEMO_KEY = PLAYBOOK_DIR / "demo" / "kubernetes-release.asc"
# Short waits, as the demo's node vars set them (app/demo.py).
FAST: dict[str, Any] = {
    "clusterm_join_stability_window": 1,
    "clusterm_join_poll": 1,
    "clusterm_join_backoff": 0,
    "clusterm_join_register_timeout": 5,
    "clusterm_join_timeout": 20,
}


class Sandbox:
    """Nodes under `base`: `base/NAME` is a node's root, `base/cluster` the control plane."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.cluster_dir = base / "cluster"
        self.cluster_dir.mkdir(parents=True, exist_ok=True)

    def root(self, name: str) -> Path:
        return self.base / name

    def host(
        self,
        name: str,
        group: str = inventory.WORKER,
        *,
        labels: Mapping[str, str] | None = None,
        fqdn: str | None = None,
        **node_vars: Any,
    ) -> inventory.Host:
        """A node as clusterm registers a demo node (ansible/demo/README.md), plus `node_vars`."""
        root = self.root(name)
        root.mkdir(parents=True, exist_ok=True)
        demo_vars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "clusterm_node_root": str(root),
            "clusterm_env": {
                "PATH": f"{DEMO_BIN}:/usr/local/bin:/usr/bin:/bin",
                "FAKEHOST_ROOT": str(root),
                "FAKEHOST_FQDN": fqdn or name,
                "FAKEK8S_STATE": str(self.cluster_dir),
            },
            "clusterm_k8s_apt_key_url": f"file://{DEMO_KEY}",
        }
        return inventory.Host(
            name=name,
            address="127.0.0.1",
            ssh_port=22,
            ssh_user="nobody",
            host_group=group,
            vars=demo_vars | node_vars,
            labels=dict(labels or {}),
        )

    def inventory(
        self, targets: list[inventory.Host], cluster_masters: list[inventory.Host] | None = None
    ) -> Path:
        inv = inventory.node_inventory(targets=targets, cluster_masters=cluster_masters or [])
        path = Path(tempfile.mkdtemp(prefix="inv-", dir=self.base)) / "hosts.yml"
        return inventory.write_inventory(path, inv)

    def run(
        self,
        playbook: Path,
        hosts: Path,
        *,
        check: bool = False,
        tags: str = "",
        skip_tags: str = "",
        **extra_vars: Any,
    ) -> PlaybookRun:
        """`playbook` as the daemon runs it (extra vars from its writer), read from its events.
        The roles are clusterm's, wherever the playbook is."""
        private = Path(tempfile.mkdtemp(prefix="run-", dir=self.base))
        write_extra_vars(private, {"clusterm_job_id": 1} | extra_vars)
        options: dict[str, str] = {}
        if check:
            options["cmdline"] = "--check --diff"
        if tags:
            options["tags"] = tags
        if skip_tags:
            options["skip_tags"] = skip_tags
        runner = ansible_runner.run(
            private_data_dir=str(private),
            playbook=str(playbook),
            inventory=str(hosts),
            envvars={
                "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_ROLES_PATH": str(PLAYBOOK_DIR / "roles"),
            },
            quiet=True,
            timeout=300,
            settings={"pexpect_timeout": 0.2},
            **options,
        )
        with runner.stdout as output:
            stdout = output.read()
        return PlaybookRun(
            status=runner.status, rc=runner.rc, events=list(runner.events), stdout=stdout
        )

    def cluster_state(self) -> dict[str, Any]:
        return dict(json.loads((self.cluster_dir / "cluster.json").read_text()))

    def copy(self, base: Path) -> Sandbox:
        """The nodes' roots and the control plane, copied under `base` (not the runs' and
        inventories' directories: each run writes its own)."""

        def runs(directory: str, names: list[str]) -> list[str]:
            top = Path(directory) == self.base
            return [n for n in names if top and n.startswith(("run-", "inv-"))]

        shutil.copytree(self.base, base, symlinks=True, ignore=runs)
        return Sandbox(base)


NO_CNI: dict[str, Any] = {"clusterm_cni_manifest_url": ""}


class Commissioned:
    """Clusters commissioned by commission.yml, each once per test run, then copied for every test
    that asks: a test starts from a cluster no other test has touched.

    `base` is shared by the xdist workers of a run: the first worker that needs a cluster builds it
    there while the others wait for it (a lock per cluster), rather than each commissioning its own
    on the same cores."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._built: dict[tuple[tuple[str, str], ...], Sandbox] = {}

    def copy(self, base: Path, *nodes: tuple[str, str]) -> Sandbox:
        """A copy under `base` of the cluster of `nodes` (name, host group), commissioned together
        in this order with the short waits (FAST) and no pod network."""
        template = self._built.get(nodes)
        if template is None:
            template = self._built[nodes] = self._shared(nodes)
        return template.copy(base)

    def _shared(self, nodes: tuple[tuple[str, str], ...]) -> Sandbox:
        key = "-".join(f"{name}.{group}" for name, group in nodes)
        directory, done = self.base / key, self.base / f"{key}.done"
        with (self.base / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                shutil.rmtree(directory, ignore_errors=True)  # a build that failed half-way
                self._commission(directory, nodes)
                done.touch()
        return Sandbox(directory)

    @staticmethod
    def _commission(directory: Path, nodes: tuple[tuple[str, str], ...]) -> None:
        sandbox = Sandbox(directory)
        hosts = [sandbox.host(name, group) for name, group in nodes]
        run = sandbox.run(
            PLAYBOOK_DIR / "commission.yml", sandbox.inventory(hosts), **FAST | NO_CNI
        )
        assert run.outcome() == {h.name: "ok" for h in hosts}, run.stdout[-3000:]
        # A copy is the same cluster only if nothing in it points back here (a kubeconfig naming
        # its own path would send the copy's kubectl to this cluster).
        named = [
            str(path)
            for path in sorted(directory.rglob("*"))
            if path.is_file()
            and not path.relative_to(directory).parts[0].startswith(("run-", "inv-"))
            and str(directory).encode() in path.read_bytes()
        ]
        assert not named, f"these files name their sandbox's directory, a copy would not: {named}"


def write_playbook(directory: Path, name: str, text: str) -> Path:
    """A user's playbook, outside clusterm's playbook directory (so without its group_vars)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path
