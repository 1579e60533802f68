"""Playbooks in the local-connection sandbox of ansible/demo (no SSH): each node is this machine,
with its own root directory and the simulated kubeadm/kubectl/apt-get/systemctl first on PATH,
all sharing one simulated control plane. The inventory is clusterm's own (app.ansible.inventory),
and the extra vars reach ansible-playbook as the daemon writes them, every string `!unsafe`."""

from __future__ import annotations

import json
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


def write_playbook(directory: Path, name: str, text: str) -> Path:
    """A user's playbook, outside clusterm's playbook directory (so without its group_vars)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path
