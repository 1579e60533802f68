"""A real `clusterm serve` on a given database (SQLite or PostgreSQL), over HTTP or HTTPS."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.core.test_daemon import CLUSTERM, free_port
from tests.jobs.conftest import PLAYBOOKS
from tests.polling import wait_until


class Server:
    def __init__(
        self,
        data_dir: Path,
        log: Path,
        db_url: str,
        *,
        tls: tuple[Path, Path] | None = None,
        verify: ssl.SSLContext | bool = True,
        **env: str,
    ) -> None:
        self.data_dir, self.log, self.db_url, self.tls, self.verify = (
            data_dir,
            log,
            db_url,
            tls,
            verify,
        )
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.clients: list[httpx.Client] = []

    def start(self) -> None:
        env = {
            **os.environ,
            "CLUSTERM_PLAYBOOK_DIR": str(PLAYBOOKS),
            "CLUSTERM_COMMISSION_PLAYBOOK": "job.yml",
            "CLUSTERM_DECOMMISSION_PLAYBOOK": "job.yml",
            "CLUSTERM_DATABASE_URL": self.db_url,
            **self.env,
        }
        if self.tls:
            env["CLUSTERM_TLS_CERT_FILE"], env["CLUSTERM_TLS_KEY_FILE"] = map(str, self.tls)
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*CLUSTERM, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                stderr=err,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        wait_until(self._ready, timeout_s=30, what="the daemon to become ready")

    def _ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, "the daemon exited during start-up: " + self.stderr()
        try:
            return httpx.get(f"{self.url}/readyz", verify=self.verify, timeout=1).is_success
        except httpx.TransportError:
            return False

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            verify=self.verify,
            timeout=30,
            **kwargs,
        )
        self.clients.append(client)
        return client

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
