"""Real OpenSSH servers on loopback, one per simulated node.

Each host is a real `sshd` (Debian's openssh-server) with its own address, port, host key, config
and log, that accepts the test's generated key for the current user. The nodes share this machine's
filesystem, so each gets its own root directory (the playbooks' `clusterm_node_root`) and an
environment, set by sshd's `SetEnv`, that puts the simulated commands first on PATH and tells them
which node they run on.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.polling import wait_until

SSHD = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin") or "/usr/sbin/sshd"
REPO = Path(__file__).resolve().parents[2]
SHIMS = Path(__file__).resolve().parent / "shims"
DEMO_BIN = REPO / "ansible" / "demo" / "bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "clusterm-test", "-f", str(path)],
        check=True,
    )
    return path


@dataclass
class SshHost:
    """One simulated node: a running sshd and the node's root directory."""

    name: str
    port: int
    home: Path  # sshd's config, host key and log
    root: Path  # the node's filesystem, as `clusterm_node_root`
    state_dir: Path  # the fake control plane shared by all hosts
    authorized_keys: Path
    fqdn: str = ""
    host_group: str = "worker"
    address: str = "127.0.0.1"
    user: str = field(default_factory=getpass.getuser)
    extra_vars: dict[str, Any] = field(default_factory=dict)  # more node vars, set by the test
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.fqdn = self.fqdn or self.name

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{SHIMS}:{DEMO_BIN}:{SYSTEM_PATH}",
            "FAKEK8S_STATE": str(self.state_dir),
            "FAKEHOST_ROOT": str(self.root),
            "FAKEHOST_FQDN": self.fqdn,
            # bash sources ~/.bashrc for ssh commands only at shell level 1: a test host runs no
            # profile of the user running the tests (it can be slow, and changes PATH).
            "SHLVL": "1",
        }

    @property
    def vars(self) -> dict[str, Any]:
        """The node vars to register: what the playbooks need to stay inside this node's root."""
        return {
            "clusterm_node_root": str(self.root),
            "clusterm_k8s_apt_key_url": f"file://{DEMO_BIN.parent / 'kubernetes-release.asc'}",
            "clusterm_cni_manifest_url": "",  # offline: no pod network to download
            "ansible_python_interpreter": "/usr/bin/python3",
        } | self.extra_vars

    def node_body(self, **extra: Any) -> dict[str, Any]:
        """A body for `POST /nodes`."""
        body = {
            "name": self.name,
            "address": self.address,
            "ssh_port": self.port,
            "ssh_user": self.user,
            "host_group": self.host_group,
            "vars": self.vars,
        }
        return body | extra

    def inventory_vars(self) -> dict[str, Any]:
        """Host vars as the daemon generates them (the inventory contract in ansible/README.md)."""
        return {
            "ansible_host": self.address,
            "ansible_port": self.port,
            "ansible_user": self.user,
        } | self.vars

    def write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        key = self.home / "ssh_host_ed25519_key"
        if not key.exists():
            keygen(key)
        setenv = " ".join(f'"{k}={v}"' for k, v in self.env.items())
        config = self.home / "sshd_config"
        config.write_text(
            f"""Port {self.port}
ListenAddress {self.address}
HostKey {key}
PidFile none
AuthorizedKeysFile {self.authorized_keys}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
Subsystem sftp internal-sftp
SetEnv {setenv}
"""
        )
        return config

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start (or restart) this host's sshd and wait until it answers with an SSH banner."""
        if self.running:
            return
        config = self.write_config()
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        log = open(self.home / "sshd.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_until(
            self._answers,
            timeout_s=START_TIMEOUT,
            what=f"sshd for {self.name} to answer on port {self.port}",
            interval_s=0.02,
        )

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"sshd for {self.name} exited: {self._log_tail()}")
        return self._banner()

    def stop(self) -> None:
        """Power the host off: its sshd and every open session go, so the node is unreachable
        (connection refused), even through an SSH master connection kept by ControlPersist."""
        if self.process is None:
            return
        for pid in _descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def _banner(self) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=0.5) as sock:
                return sock.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def _log_tail(self) -> str:
        return (self.home / "sshd.log").read_text(errors="replace")[-2000:]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
