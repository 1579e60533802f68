"""The `ssh_hosts` fixture: real sshd test hosts on loopback, the nodes clusterm provisions.

Use it from any test directory by importing it in that directory's conftest.py:

    from tests.hosts.fixture import ssh_hosts  # noqa: F401

Then in a test:

    def test_commission(ssh_hosts, admin):
        m1, w1, w2 = ssh_hosts.start(3)              # node1 is a master, node2-3 workers
        admin.post("/nodes", json=[h.node_body() for h in (m1, w1, w2)])
        ...   # the daemon's settings need ssh_hosts.private_key and ssh_hosts.known_hosts
        w2.stop()                                    # now unreachable (connection refused)
        w2.start()                                   # back, same port and host key
        assert set(ssh_hosts.cluster.nodes()) == {"node1", "node2"}
        ssh_hosts.cluster.vanish("node3", joins=2)   # the cloud deletes its next 2 joins
        ssh_hosts.cluster.refuse_joins("node3", times=1)  # its next kubeadm join exits 1
        ssh_hosts.cluster.delete_node("node2")       # drift: the Node drops out
        ssh_hosts.cluster.register_node("node2")     # ... and comes back

`ssh_hosts.start(count, masters=1, names=None, fqdns=None)` starts `count` more hosts (names default
to node1, node2, ... continuing the numbering; the first `masters` of them get host_group master;
`fqdns` maps a name to what `hostname -f` answers there, default the node name, so the verified join
sees no name mismatch unless a test asks for one). Every host:

- is a real `sshd` on its own loopback address (127.0.0.2, 127.0.0.3, ...; `host.address`) and port,
  with its own host key, logging in the current user with the generated key
  `ssh_hosts.private_key`; `ssh_hosts.known_hosts` is an empty known_hosts file (hosts are
  accepted on first use; their keys stay the same across stop()/start());
- gets more node vars from `host.extra_vars` (set before registering or building an inventory);
- has its own root directory `host.root` (node var `clusterm_node_root`): everything the playbooks
  write lands there;
- runs commands with the simulated `kubeadm`/`kubectl`/`apt-get`/`systemctl`... first on PATH
  (sshd `SetEnv`), all sharing one fake control plane `ssh_hosts.cluster` (a
  tests.hosts.cluster.FakeCluster).

`host.node_body()` is the body for `POST /nodes` (name, address, ssh_port, ssh_user, host_group
and the node vars); `host.inventory_vars()` the host vars of a generated inventory.
`ssh_hosts.inventory()` writes an inventory following the jobs contract (ansible/README.md), for
running playbooks without the daemon.
`ssh_hosts.ansible_env()` is the environment for ansible-playbook (SSH options, pipelining,
ControlPersist in a private dir). All sshd processes are stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hosts.cluster import FakeCluster
from tests.hosts.sshd import SshHost, free_port, keygen


class SshHosts:
    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.private_key = keygen(base / "id_ed25519")
        self.authorized_keys = base / "authorized_keys"
        self.authorized_keys.write_text((base / "id_ed25519.pub").read_text())
        self.known_hosts = base / "known_hosts"
        self.known_hosts.touch()
        self.state_dir = base / "cluster"
        self.state_dir.mkdir()
        self.cluster = FakeCluster(self.state_dir)
        self.hosts: dict[str, SshHost] = {}

    def start(
        self,
        count: int,
        *,
        masters: int = 1,
        names: Iterable[str] | None = None,
        fqdns: dict[str, str] | None = None,
    ) -> list[SshHost]:
        start = len(self.hosts) + 1
        chosen = list(names) if names is not None else [f"node{start + i}" for i in range(count)]
        started = []
        for index, name in enumerate(chosen):
            host = SshHost(
                name=name,
                # Each host its own loopback address, as real nodes have: discover targets and
                # known_hosts entries are per address.
                address=f"127.0.0.{len(self.hosts) + 2}",
                port=free_port(),
                home=self.base / "sshd" / name,
                root=self.base / "roots" / name,
                state_dir=self.state_dir,
                authorized_keys=self.authorized_keys,
                fqdn=(fqdns or {}).get(name, ""),
                host_group="master" if index < masters else "worker",
            )
            # Laid out like a fresh Debian host by the simulated commands on first use.
            host.root.mkdir(parents=True)
            host.start()
            self.hosts[name] = host
            started.append(host)
        return started

    def __getitem__(self, name: str) -> SshHost:
        return self.hosts[name]

    def ansible_env(self) -> dict[str, str]:
        """Environment for `ansible-playbook` against these hosts: fast and quiet."""
        return {
            "ANSIBLE_PRIVATE_KEY_FILE": str(self.private_key),
            "ANSIBLE_SSH_ARGS": (
                "-o ControlMaster=auto -o ControlPersist=60s "
                f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=accept-new "
                "-o ConnectTimeout=5"
            ),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.base / "cp"),
            "ANSIBLE_PIPELINING": "true",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_FORKS": "10",
            "ANSIBLE_LOCAL_TEMP": str(self.base / "ansible-tmp"),
        }

    def inventory(
        self,
        targets: Iterable[SshHost],
        *,
        masters: Iterable[SshHost] = (),
        path: Path | None = None,
    ) -> Path:
        """An inventory per the jobs contract: `targets` are the job's nodes; `masters` are the
        already-commissioned masters (listed first in the masters group)."""
        targets = list(targets)
        existing = [m for m in masters if m not in targets]
        job_masters = [h for h in targets if h.host_group == "master"]
        hostvars = {h.name: h.inventory_vars() for h in [*existing, *targets]}
        inventory: dict[str, Any] = {
            "all": {
                "children": {
                    "targets": {"hosts": {h.name: hostvars[h.name] for h in targets}},
                    "masters": {"hosts": {h.name: {} for h in [*existing, *job_masters]}},
                    "workers": {"hosts": {h.name: {} for h in targets if h.host_group == "worker"}},
                },
                "hosts": {h.name: hostvars[h.name] for h in existing},
            }
        }
        path = path or self.base / "inventory.yml"
        path.write_text(yaml.safe_dump(inventory))
        return path

    def close(self) -> None:
        for host in self.hosts.values():
            host.stop()


@pytest.fixture
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHosts]:
    hosts = SshHosts(tmp_path_factory.mktemp("hosts"))
    try:
        yield hosts
    finally:
        hosts.close()
