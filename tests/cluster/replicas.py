"""Real `clusterm serve` replicas on one PostgreSQL schema, for the tests that need several.

Each replica is its own process with its own data dir, port, replica id and advertise URL; they
share the database (a fresh schema per cluster), the admin token file and one config file. The
harness kills a replica with SIGKILL (a crash: the lease runs out), stops one with SIGTERM (a
graceful stop: the lead is handed over at once), and finds the leader the way an operator would,
by asking every living replica.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.core.test_daemon import CLUSTERM, free_port, wait_ready
from tests.polling import wait_until

PLAYBOOKS = Path(__file__).parent / "playbooks"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FINISHED = {"successful", "failed", "canceled", "timeout", "interrupted"}


def pg_url() -> str:
    """The test PostgreSQL's URL, after checking it answers: without it these tests cannot run,
    and they fail (never skip) saying so."""
    url = os.environ.get("CLUSTERM_TEST_DATABASE_URL") or DEFAULT_PG_URL
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"the replica tests need PostgreSQL, and it does not answer at "
            f"{engine.url.render_as_string(hide_password=True)} ({type(exc.orig).__name__}: "
            f"{str(exc.orig).strip().splitlines()[0]}). Start it, or point "
            "CLUSTERM_TEST_DATABASE_URL at one.",
            pytrace=False,
        )
    finally:
        engine.dispose()
    return url


class Replica:
    """One `clusterm serve` process; `start` may be called again after a kill or a stop."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = cluster.base / name
        self.log = cluster.base / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    @property
    def id(self) -> str:
        return f"replica-{self.name}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, wait: bool = True) -> Replica:
        env = {
            **os.environ,
            **self.cluster.env,
            "CLUSTERM_REPLICA_ID": self.id,
            "CLUSTERM_ADVERTISE_URL": self.url,
        }
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*CLUSTERM, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                stderr=err,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        assert self.proc is not None
        try:
            wait_ready(self.url, self.proc, timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{self.id}: {exc}; its log:\n{self.tail()}") from None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def http(self) -> httpx.Client:
        """A client with the admin token (the token the first replica wrote for all)."""
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self) -> httpx.Client:
        """A client of its own (one per thread: one client's pool shared by many threads leaves
        sockets unclosed), to close after use."""
        token = self.cluster.token_file.read_text().strip()
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def role(self) -> str | None:
        """What /readyz says this replica is, or None when it does not answer ready."""
        try:
            r = httpx.get(f"{self.url}/readyz", timeout=2)
        except httpx.TransportError:
            return None
        return str(r.json()["role"]) if r.status_code == 200 else None

    def replicas(self) -> dict[str, Any]:
        r = self.http.get("/cluster/replicas")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def kill(self) -> None:
        """kill -9: no stop runs, the lease is left to run out."""
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        """A graceful stop (SIGTERM), waited for."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        self._close_client()  # an idle keep-alive connection would hold up a graceful stop
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        self._close_client()
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()


class Cluster:
    """Replicas on one database, sharing the admin token file and a config file."""

    def __init__(
        self, base: Path, db_url: str, *, ttl_s: float = 3.0, config: dict[str, Any] | None = None
    ) -> None:
        self.base = base
        self.db_url = db_url
        self.token_file = base / "admin.token"
        self.record = base / "ran.txt"  # the test job's side effect (playbooks/job.yml)
        config_file = base / "clusterm.yaml"
        # JSON is YAML: nested settings (the verbosity components) go in the file.
        config_file.write_text(json.dumps(config or {}, default=str))
        self.env = {
            "CLUSTERM_CONFIG": str(config_file),
            "CLUSTERM_DATABASE_URL": db_url,
            "CLUSTERM_ADMIN_TOKEN_FILE": str(self.token_file),
            "CLUSTERM_LEASE_TTL_S": str(ttl_s),
            "CLUSTERM_PLAYBOOK_DIR": str(PLAYBOOKS),
            "CLUSTERM_COMMISSION_PLAYBOOK": "job.yml",
            "CLUSTERM_DECOMMISSION_PLAYBOOK": "job.yml",
            "CLUSTERM_UPDATE_PLAYBOOK": "job.yml",
            # The drift watch would run a playbook of its own now and then: not under test.
            "CLUSTERM_DRIFT_INTERVAL_S": "0",
        }
        self.members: list[Replica] = []

    def add(self, *, start: bool = True) -> Replica:
        replica = Replica(self, chr(ord("a") + len(self.members)))
        self.members.append(replica)
        if start:
            replica.start()
        return replica

    def start(self, n: int) -> list[Replica]:
        """Start `n` replicas: the first alone (it migrates and writes the token), the rest
        together."""
        first = self.add()
        rest = [self.add(start=False) for _ in range(n - 1)]
        for replica in rest:
            replica.start(wait=False)
        for replica in rest:
            replica.wait_ready()
        return [first, *rest]

    @property
    def living(self) -> list[Replica]:
        return [r for r in self.members if r.alive]

    def leader(self, *, timeout_s: float = 15) -> Replica:
        """The one living replica that says it leads, once every living replica answers and
        exactly one says so."""

        def one() -> Replica | None:
            roles = {r: r.role() for r in self.living}
            if None in roles.values():
                return None
            leaders = [r for r, role in roles.items() if role == "leader"]
            return leaders[0] if len(leaders) == 1 else None

        return wait_until(one, timeout_s=timeout_s, what="exactly one replica to lead")

    def followers(self) -> list[Replica]:
        leader = self.leader()
        return [r for r in self.living if r is not leader]

    def sql(self, statement: str, **params: Any) -> list[Any]:
        """Run SQL on the cluster's schema (to set up what the API cannot: a node's state, the
        schema's version); returns the rows, if any."""
        engine = sa.create_engine(self.db_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def close(self) -> None:
        for replica in self.members:
            replica.close()


# --- what the tests ask of the replicas ---------------------------------------------------------


def fresh(prefix: str) -> str:
    """A node name no other test of the cluster uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def local_node(name: str) -> dict[str, Any]:
    """A node Ansible reaches over the local connection (the test job runs on this machine)."""
    return {
        "name": name,
        "address": "127.0.0.1",
        "host_group": "master",  # a worker would need a master commissioned first
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
    }


def add_nodes(client: httpx.Client, *names: str) -> None:
    r = client.post("/nodes", json=[local_node(name) for name in names])
    assert r.status_code == 201, r.text


def commission(client: httpx.Client, *names: str, **extra_vars: Any) -> httpx.Response:
    return client.post("/commission/nodes", json={"nodes": list(names), "extra_vars": extra_vars})


def job_of(client: httpx.Client, job_id: int) -> dict[str, Any]:
    r = client.get(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def wait_finished(client: httpx.Client, job_id: int, timeout_s: float = 60) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = job_of(client, job_id)
        return job if job["status"] in FINISHED else None

    return wait_until(finished, timeout_s=timeout_s, what=f"job {job_id} to end")


def events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/info/timeline", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def started(client: httpx.Client, job_id: int) -> int:
    """How many times the timeline says the job started."""
    return len(events(client, job=job_id, reason="JobStarted"))


def runs_recorded(cluster: Cluster, job_id: int) -> int:
    """How many times the job's playbook ran its first task (its side effect)."""
    if not cluster.record.exists():
        return 0
    return sum(
        line.startswith(f"job={job_id} ") for line in cluster.record.read_text().splitlines()
    )


def log_lines(client: httpx.Client, which: str = "last", **params: Any) -> list[str]:
    r = client.get(f"/info/job/{which}", params=params)
    assert r.status_code == 200, r.text
    lines: list[str] = r.json()["logs"]
    return lines


def emitted(lines: list[str]) -> list[int]:
    """The numbers of the lines the test job printed (emit.py: "00000042 yyyyyyyyyy")."""
    out = []
    for line in lines:
        head = line.strip().split(" ", 1)[0]
        if len(head) == 8 and head.isdigit():
            out.append(int(head))
    return out
