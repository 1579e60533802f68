"""A real `clusterm serve` process for the tests that need one: kill -9, memory, restarts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.core.test_daemon import free_port, wait_ready
from tests.jobs.conftest import PLAYBOOKS

CLUSTERM = [sys.executable, "-c", "from app.cli import main; main()"]


class Daemon:
    def __init__(self, data_dir: Path, log: Path, **env: str) -> None:
        self.data_dir, self.log, self.env = data_dir, log, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.clients: list[httpx.Client] = []

    def start(self, ready_timeout_s: float = 20) -> httpx.Client:
        env = {
            **os.environ,
            "CLUSTERM_PLAYBOOK_DIR": str(PLAYBOOKS),
            "CLUSTERM_COMMISSION_PLAYBOOK": "job.yml",
            "CLUSTERM_DECOMMISSION_PLAYBOOK": "job.yml",
            **self.env,
        }
        env.pop("CLUSTERM_DATABASE_URL", None)
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*CLUSTERM, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                stderr=err,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        wait_ready(self.url, self.proc, timeout=ready_timeout_s)
        token = (self.data_dir / "admin.token").read_text().strip()
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        self.clients.append(client)
        return client

    def memory_kb(self, field: str) -> int:
        """VmRSS (now) or VmHWM (the peak so far) of the daemon process."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        for client in self.clients:
            client.close()  # an idle keep-alive connection would hold up a graceful shutdown
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
