"""SSH known hosts through the database (app.cluster.known_hosts): a host key one replica's run
accepted is trusted by the next replica, whose data dir never saw it."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import sqlalchemy as sa

from app.cluster import known_hosts
from app.cluster.models import KnownHost
from app.config import Settings, load_settings
from app.db import Database
from app.nodes.models import Node
from app.runtime import runtime_of
from tests.conftest import admin_client
from tests.hosts.fixture import SshHosts, ssh_hosts  # noqa: F401  (the fixture)

PLAYBOOK = Path(__file__).parent / "playbooks" / "ssh_nodes.yml"
LINE_A = "[127.0.0.9]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfA"
LINE_B = "[127.0.0.8]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfB"


def stored(db: Database) -> dict[str, str]:
    with db.read() as session:
        return {row.digest: row.line for row in session.scalars(sa.select(KnownHost))}


def test_collect_stores_each_new_line_once_and_materialize_writes_them_all(
    db: Database, tmp_path: Path
) -> None:
    first = tmp_path / "a" / "known_hosts"
    first.parent.mkdir()
    first.write_text(f"{LINE_A}\n\n# a comment\n{LINE_A}  \n")
    assert known_hosts.collect(db, first) == 1
    assert known_hosts.collect(db, first) == 0  # already there
    assert stored(db) == {hashlib.sha256(LINE_A.encode()).hexdigest(): LINE_A}

    # Another replica's file: its own line is stored, and it gets every line in the database.
    other = tmp_path / "b" / "known_hosts"
    other.parent.mkdir()
    other.write_text(f"{LINE_B}\n")
    assert known_hosts.materialize(db, other) == 2
    assert other.read_text() == f"{LINE_A}\n{LINE_B}\n"
    assert stat.S_IMODE(other.stat().st_mode) == 0o600
    assert set(stored(db).values()) == {LINE_A, LINE_B}
    # A fresh data dir: the file is made, private.
    fresh = tmp_path / "c" / "known_hosts"
    assert known_hosts.materialize(db, fresh) == 2
    assert fresh.read_text() == f"{LINE_A}\n{LINE_B}\n"
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert [p.name for p in fresh.parent.iterdir()] == ["known_hosts"]  # no temporary left


def replica_settings(
    tmp_path: Path, db_url: str, hosts: SshHosts, name: str, policy: str
) -> Settings:
    return load_settings(
        data_dir=tmp_path / name,
        database_url=db_url,
        admin_token_file=tmp_path / "admin.token",  # shared, as replicas share it
        ssh_private_key_file=hosts.private_key,
        ssh_host_key_policy=policy,
        cluster_nodes_playbook=str(PLAYBOOK),
        # A new SSH connection every run: one kept open by the last run would skip the host
        # key check this test is about.
        ansible_env={"ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPath=none"},
        drift_interval_s=0,
    )


def check(
    settings: Settings, master: str | None = None, body: dict[str, object] | None = None
) -> dict[str, object]:
    with admin_client(settings, raise_server_exceptions=False) as client:
        if body is not None:
            assert client.post("/nodes", json=body).status_code == 201
            db = runtime_of(client.app).db
            with db.write() as session:
                session.execute(
                    sa.update(Node).where(Node.name == master).values(state="commissioned")
                )
        r = client.post("/drift/check")
        assert r.status_code == 200, r.text
        result: dict[str, object] = r.json()
        return result


def test_a_host_key_learnt_by_one_replica_is_trusted_by_the_next(
    tmp_path: Path,
    db_url: str,
    ssh_hosts: SshHosts,  # noqa: F811
) -> None:
    [master] = ssh_hosts.start(1)
    # The first replica accepts the master's key on first contact (accept-new)...
    first = replica_settings(tmp_path, db_url, ssh_hosts, "replica1", "accept-new")
    found = check(first, master.name, master.node_body())
    assert found["outcome"] == "checked", found
    learnt = [line for line in first.known_hosts_file.read_text().splitlines() if line]
    assert learnt, "SSH wrote no host key"
    db = Database(db_url)
    try:
        assert set(stored(db).values()) == set(learnt)  # ...and it is in the database
    finally:
        db.dispose()

    # The next replica, with a data dir of its own that never saw the master, trusts only the
    # keys it already knows (strict): its run succeeds only if the key was written before it.
    second = replica_settings(tmp_path, db_url, ssh_hosts, "replica2", "strict")
    assert not second.known_hosts_file.exists()
    found = check(second)
    assert found["outcome"] == "checked", found
    assert found["message"] == "1 Nodes in the cluster; none missing"
    assert set(second.known_hosts_file.read_text().splitlines()) == set(learnt)
    assert stat.S_IMODE(second.known_hosts_file.stat().st_mode) == 0o600
