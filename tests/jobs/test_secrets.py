"""No secret reaches a log: a scripted session against a real `clusterm serve`, at its noisiest.

The daemon runs the shipped playbooks over real SSH (tests/hosts) with the simulated control
plane, with its own verbosity at 5 and Ansible's at 3 (-vvv). The session uses a token of each
role, a password node var, a secret global, a refused request carrying a secret, and a commission
whose control-plane join gets a join token, the CA certificate hash and a certificate key (one
join attempt refused first, so the failure evidence is reported too). Then the daemon's log, the
job logs as the API serves them and as the database stores them, and every file of the job
directories are searched for each of those secrets.

The admin's globals also hold shell syntax in a variable the join's verification loop puts in a
shell line: the playbooks quote it, so it stays one word (defence in depth: a value from a request
is typed, and never templated).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import stat
import subprocess
from pathlib import Path

from tests.hosts.cluster import fakek8s
from tests.hosts.fixture import SshHosts
from tests.hosts.fixture import ssh_hosts as ssh_hosts  # the fixture
from tests.hosts.sshd import REPO
from tests.jobs.conftest import wait_finished
from tests.jobs.daemon import CLUSTERM, Daemon
from tests.playbooks.conftest import FAST_JOIN

# The two files a job must hand its secrets to Ansible in; they are private instead.
INPUTS = ("inventory/hosts.yml", "env/extravars")


def create_token(data_dir: Path, role: str) -> str:
    done = subprocess.run(
        [*CLUSTERM, "token", "create", "--role", role, "--name", role, "--data-dir", str(data_dir)],
        env={k: v for k, v in os.environ.items() if k != "CLUSTERM_DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def control_plane_secrets(hosts: SshHosts) -> dict[str, str]:
    """What the simulated control plane issued: join tokens, the CA hash, the certificate key."""
    with fakek8s.cluster(hosts.state_dir) as state:
        found = {f"join token {i}": token for i, token in enumerate(state["tokens"])}
        ca_hash = hashlib.sha256(state["cluster_id"].encode()).hexdigest()
        found["discovery hash"] = ca_hash
        found["certificate key"] = state["certificate_key"]
    return found


def test_no_secret_reaches_a_log_or_a_job_log(ssh_hosts: SshHosts, tmp_path: Path) -> None:
    m1, m2 = ssh_hosts.start(2, masters=2)
    password, global_secret, refused_secret = (secrets.token_hex(12) for _ in range(3))
    m2.extra_vars["ansible_become_password"] = password
    env = ssh_hosts.ansible_env()
    data_dir, log = tmp_path / "data", tmp_path / "daemon.log"
    daemon = Daemon(
        data_dir,
        log,
        CLUSTERM_PLAYBOOK_DIR=str(REPO / "ansible"),
        CLUSTERM_COMMISSION_PLAYBOOK="commission.yml",
        CLUSTERM_DECOMMISSION_PLAYBOOK="decommission.yml",
        CLUSTERM_SSH_PRIVATE_KEY_FILE=str(ssh_hosts.private_key),
        CLUSTERM_EXTRA_VARS=json.dumps(FAST_JOIN),
        CLUSTERM_ANSIBLE_ENV=json.dumps(
            {
                **{k: env[k] for k in ("ANSIBLE_PIPELINING", "ANSIBLE_SSH_CONTROL_PATH_DIR")},
                "ANSIBLE_VERBOSITY": "3",
            }
        ),
        CLUSTERM_JOB_TIMEOUT_S="240",
    )
    try:
        admin = daemon.start()
        assert admin.put("/debug/flags/v", content=b"5").status_code == 200
        tokens = {"admin": (data_dir / "admin.token").read_text().strip()}
        tokens |= {role: create_token(data_dir, role) for role in ("operator", "viewer")}

        def as_role(role: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[role]}"}

        put = admin.put("/globals", json={"extra_vars": {"registry_password": global_secret}})
        assert put.status_code == 200, put.text
        admin.post("/nodes", json=[m1.node_body(), m2.node_body()]).raise_for_status()
        refused = admin.post(
            "/commission/nodes",
            json={"nodes": [m1.name], "extra_vars": {"ansible_become_password": refused_secret}},
            headers=as_role("operator"),
        )
        assert refused.status_code == 403
        ssh_hosts.cluster.refuse_joins(m2.name, times=1)

        response = admin.post(
            "/commission/nodes",
            json={"nodes": [m1.name, m2.name], "extra_vars": {"clusterm_join_retries": 2}},
            headers=as_role("operator"),
        )
        assert response.status_code == 202, response.text
        job = wait_finished(admin, response.json()["id"], timeout_s=240)
        viewer = as_role("viewer")
        text = admin.get("/info/job/last?format=text&color=false", headers=viewer).text
        assert job["status"] == "successful", text
        assert set(ssh_hosts.cluster.nodes()) == {m1.name, m2.name}
        assert ssh_hosts.cluster.joins(m2.name) == 1  # refused once, then joined

        # What a viewer reads: the job log (both forms), the job, the timeline.
        served = [
            text,
            admin.get("/info/job/last", headers=viewer).text,
            admin.get("/jobs", headers=viewer).text,
            admin.get("/info/timeline?limit=500", headers=viewer).text,
        ]
        assert "join_attempt" in text  # the attempts' reports are in the log
        assert "ESTABLISH SSH CONNECTION" in text  # -vvv
        assert "JoinFailed" in served[3]  # the refused attempt reached the timeline
    finally:
        daemon.close()

    issued = control_plane_secrets(ssh_hosts)
    assert len([k for k in issued if k.startswith("join token")]) >= 2
    assert issued["certificate key"]
    wanted = {
        **issued,
        **{f"{role} API token": token for role, token in tokens.items()},
        "node var ansible_become_password": password,
        "global registry_password": global_secret,
        "refused request's value": refused_secret,
    }
    where: dict[str, str] = {"daemon log": log.read_text(errors="replace")}
    assert "sqlalchemy.engine" in where["daemon log"]  # V5: every SQL statement is logged
    for index, body in enumerate(served):
        where[f"API response {index}"] = body
    for path in sorted((data_dir / "jobs").rglob("*")):
        if not path.is_file():
            continue
        if str(path).endswith(INPUTS):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            continue
        where[str(path.relative_to(data_dir))] = path.read_text(errors="replace")
    # The job's log as the database stores it (every chunk), and what its row kept.
    with sqlite3.connect(data_dir / "clusterm.db") as conn:
        chunks = [text for (text,) in conn.execute("SELECT text FROM job_log_chunk ORDER BY id")]
        inputs = conn.execute("SELECT inputs FROM job").fetchall()
    where["stored job log"] = "\n".join(chunks)
    assert "join_attempt" in where["stored job log"]
    assert inputs == [(None,)], "a job's request vars go with its end"

    leaks = [
        f"{secret_name} in {place}"
        for secret_name, secret in wanted.items()
        for place, content in where.items()
        if secret in content
    ]
    assert leaks == []
