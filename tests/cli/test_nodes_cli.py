"""clusterctl's inventory commands against the real app (TestClient injected as httpx client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import Database
from app.drift import service as drift
from app.nodes.models import Node
from clusterctl.main import run


class Ctl(Protocol):
    """clusterctl run in-process against the app: (exit code, stdout, stderr)."""

    def __call__(self, *argv: str, role: str = "admin") -> tuple[int, str, str]: ...


@pytest.fixture
def ctl(client: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Ctl:
    def call(*argv: str, role: str = "admin") -> tuple[int, str, str]:
        code = run(["--token", tokens[role], *argv], http=client)
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_add_get_and_list(ctl: Ctl) -> None:
    code, out, err = ctl(
        "node", "add", "n1", "--addr", "10.0.0.1", "-g", "master",
        "--ssh-port", "2222", "--label", "zone=a", "--var", "k8s_version=1.31", "--var", "x=[1]",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = ctl("node", "get", "n1", "--json")
    node = json.loads(out)
    assert node["host_group"] == "master"
    assert node["ssh_port"] == 2222
    assert node["labels"] == {"zone": "a"}
    assert node["vars"] == {"k8s_version": 1.31, "x": [1]}

    ctl("node", "add", "n2", "--addr", "10.0.0.2")
    code, out, _ = ctl("nodes", "get", role="viewer")
    assert code == 0
    lines = out.splitlines()
    header = "NAME ADDRESS USER GROUP STATE IN CLUSTER LAST SEEN LABELS"
    assert lines[0].split() == header.split()
    assert lines[1].split() == [
        "n1",
        "10.0.0.1:2222",
        "root",
        "master",
        "registered",
        "-",
        "-",
        "zone=a",
    ]
    assert lines[2].split() == ["n2", "10.0.0.2:22", "root", "worker", "registered", "-", "-", "-"]
    # aligned: every column starts at the same offset on every line
    assert lines[1].index("10.0.0.1") == lines[2].index("10.0.0.2") == lines[0].index("ADDRESS")

    code, out, _ = ctl("nodes", "get", "--json", "--group", "worker")
    assert [n["name"] for n in json.loads(out)] == ["n2"]


def test_in_cluster_says_missing_only_where_the_node_should_be(
    ctl: Ctl, db: Database, client: TestClient, tokens: dict[str, str]
) -> None:
    """The column as the daemon's own table says it: absent is MISSING for a commissioned node
    (or one in maintenance), "no" for a registered one or one a job holds (an update)."""
    for name in ("c1", "r1", "u1", "s1"):
        assert ctl("node", "add", name, "--addr", "10.0.0.1")[0] == 0
    with db.write() as session:
        for name, state in (("c1", "commissioned"), ("u1", "updating"), ("s1", "commissioned")):
            session.execute(sa.update(Node).where(Node.name == name).values(state=state))
    with db.write() as session:
        drift.apply_node_list(session=session, present={"s1": "uid-1"})
    code, out, _ = ctl("nodes", "get")
    assert code == 0
    column = {line.split()[0]: line.split()[5] for line in out.splitlines()[1:]}
    assert column == {"c1": "MISSING", "r1": "no", "u1": "no", "s1": "yes"}
    # The daemon's own table agrees, cell for cell.
    served = client.get(
        "/info/nodes",
        params={"format": "text"},
        headers={"Authorization": f"Bearer {tokens['viewer']}"},
    ).text
    assert {line.split()[0]: line.split()[5] for line in served.splitlines()[1:]} == column


def test_refusal_is_one_line_on_stderr_and_exit_1(ctl: Ctl) -> None:
    code, out, err = ctl("node", "get", "n9")
    assert code == 1
    assert out == ""
    assert err == (
        "clusterctl: no node named 'n9'; list the nodes with GET /info/nodes [404 NodeNotFound]\n"
    )
    code, _, err = ctl("node", "add", "Bad Name", "--addr", "10.0.0.1")
    assert code == 1
    assert "name" in err
    assert "DNS-1123" in err or "lowercase" in err


def test_role_refusal(ctl: Ctl) -> None:
    code, _, err = ctl("node", "add", "n1", "--addr", "10.0.0.1", role="viewer")
    assert code == 1
    assert "needs the admin role" in err


def test_usage_error_is_exit_2(ctl: Ctl) -> None:
    code, _, err = ctl("node", "add", "n1")
    assert code == 2
    assert "--addr" in err
    code, _, err = ctl("node", "add", "n1", "--addr", "a", "--label", "novalue")
    assert code == 2
    assert "KEY=VALUE" in err
    code, _, _ = ctl("node", "maintenance", "n1", "sideways")
    assert code == 2


def test_unreachable_server_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--url", "http://127.0.0.1:9", "--token", "x", "nodes", "get"])
    assert code == 3
    assert "cannot reach clusterm at http://127.0.0.1:9" in capsys.readouterr().err


def test_rm_and_maintenance(ctl: Ctl, client: TestClient, db: Database) -> None:
    import sqlalchemy as sa

    from app.nodes.models import Node

    ctl("node", "add", "n1", "--addr", "10.0.0.1")
    # Maintenance is a job (tests/jobs/test_maintenance.py); a refusal is the daemon's 409.
    code, _, err = ctl("node", "maintenance", "n1", "on")
    assert code == 1
    assert "maintenance_on is not allowed from registered" in err
    with db.write() as session:
        session.execute(sa.update(Node).values(state="maintenance"))
    code, _, err = ctl("node", "rm", "n1")
    assert code == 1
    assert "decommission it first" in err
    with db.write() as session:
        session.execute(sa.update(Node).values(state="decommissioned"))
    code, _, err = ctl("node", "rm", "n1")
    assert code == 0
    assert ctl("node", "get", "n1")[0] == 1


INI = """\
[masters]
m1 ansible_host=10.0.0.1 ansible_user=ubuntu

[workers]
w1 ansible_host=10.0.0.2 ansible_port=2222 k8s_role=edge
w2 ansible_host=w2.example.com

[workers:vars]
pod_cidr=10.244.0.0/16
"""

YAML = """\
all:
  children:
    service-master:
      hosts:
        m1: {ansible_host: 10.0.0.1}
    service-worker:
      hosts:
        w1: {ansible_host: 10.0.0.2, ansible_port: 2222, labels_x: [1, 2]}
"""


@pytest.mark.parametrize(("suffix", "text"), [("ini", INI), ("yml", YAML)])
def test_import_inventory(ctl: Ctl, tmp_path: Path, suffix: str, text: str) -> None:
    inventory = tmp_path / f"hosts.{suffix}"
    inventory.write_text(text)
    code, out, err = ctl("node", "import", str(inventory), "--json")
    assert code == 0, err
    nodes = {n["name"]: n for n in json.loads(out)}
    assert nodes["m1"]["host_group"] == "master"
    assert nodes["m1"]["address"] == "10.0.0.1"
    assert nodes["w1"]["host_group"] == "worker"
    assert nodes["w1"]["ssh_port"] == 2222
    if suffix == "ini":
        assert nodes["m1"]["ssh_user"] == "ubuntu"
        assert nodes["w1"]["vars"] == {"k8s_role": "edge", "pod_cidr": "10.244.0.0/16"}
        assert nodes["w2"]["address"] == "w2.example.com"
    else:
        assert nodes["w1"]["vars"] == {"labels_x": [1, 2]}
    # importing again is refused whole, naming the node that exists
    code, _, err = ctl("node", "import", str(inventory))
    assert code == 1
    assert "already exists" in err


def test_import_dry_run_registers_nothing(ctl: Ctl, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(INI)
    code, out, _ = ctl("node", "import", str(inventory), "--dry-run")
    assert code == 0
    assert "(dry run)" in out
    assert json.loads(ctl("nodes", "get", "--json")[1]) == []


def test_import_of_a_non_inventory_is_a_usage_error(ctl: Ctl, tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("")
    code, _, err = ctl("node", "import", str(bad))
    assert code == 2
    assert "no host found" in err


def test_token_from_the_local_admin_file(
    client: TestClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("CLUSTERM_TOKEN", raising=False)
    monkeypatch.setenv("CLUSTERM_DATA_DIR", str(settings.data_dir))
    # A local URL: clusterctl reads the daemon's admin token file.
    assert run(["--url", "http://127.0.0.1:9007", "nodes", "get", "--json"], http=client) == 0
    assert json.loads(capsys.readouterr().out) == []
    # A remote URL: it does not, and the server says a token is missing.
    assert run(["--url", "http://cluster.example:9007", "nodes", "get"], http=client) == 1
    assert "no token" in capsys.readouterr().err


def test_node_get_shows_var_values_to_admins_only(ctl: Ctl) -> None:
    ctl("node", "add", "n1", "--addr", "10.0.0.1", "--var", "ansible_become_password=hunter2")
    code, out, _ = ctl("node", "get", "n1")
    assert code == 0
    assert "vars: ansible_become_password=hunter2" in out
    for role in ("viewer", "operator"):
        code, out, _ = ctl("node", "get", "n1", role=role)
        assert code == 0
        assert "vars: ansible_become_password=<redacted>" in out
        assert "hunter2" not in out
        code, out, _ = ctl("nodes", "get", "--json", role=role)
        assert json.loads(out)[0]["vars"] == {"ansible_become_password": "<redacted>"}
