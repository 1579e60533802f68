"""clusterctl's job commands against the real app (TestClient injected as the HTTP client)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from clusterctl.main import run
from tests.jobs.conftest import local_node, wait_finished, wait_lines

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


def ctl(client: TestClient, tokens: dict[str, str], *argv: str, role: str = "admin") -> int:
    return run(["--token", tokens[role], *argv], http=client)


def test_commission_wait_follows_the_job_and_exits_with_its_result(
    admin: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    admin.post("/nodes", json=[local_node("m1", "master"), local_node("w1")])
    code = ctl(admin, tokens, "nodes", "commission", "m1", "-g", "master", "--wait")
    out, err = capsys.readouterr()
    assert code == 0
    assert "PLAY RECAP" in out
    assert "\x1b" not in out
    assert "job 1 successful (rc 0)" in err

    code = ctl(
        admin,
        tokens,
        "nodes",
        "commission",
        "w1",
        "-e",
        json.dumps({"fail_hosts": ["w1"]}),
        "--wait",
        role="admin",  # fail_hosts is not declared for operators
    )
    out, err = capsys.readouterr()
    assert code == 4
    assert "job 2 failed" in err
    assert "cleanup w1" in out

    assert ctl(admin, tokens, "job", "get", "last", "--json") == 0
    last = json.loads(capsys.readouterr().out)
    assert last["id"] == 2
    assert last["status"] == "failed"
    assert ctl(admin, tokens, "job", "get", "last", "--tail", "1") == 0
    out = capsys.readouterr().out
    assert "job 2: commission nodes w1" in out
    assert "hosts failed: w1" in out
    assert out.rstrip().splitlines()[-1].startswith("[clusterm: job 2 failed")
    assert ctl(admin, tokens, "job", "list") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:3] == ["ID", "KIND", "STATUS"]
    assert [r[:3] for r in rows[1:]] == [
        ["2", "commission", "failed"],
        ["1", "commission", "successful"],
    ]

    # Refused: w1 is failed, decommission it is allowed; m1 commissioned cannot be commissioned.
    assert ctl(admin, tokens, "nodes", "commission", "m1") == 1
    assert "commissioned" in capsys.readouterr().err
    assert ctl(admin, tokens, "nodes", "commission", "m1", "-e", "[1]") == 2


def test_follow_cancel_and_globals(
    admin: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    admin.post("/nodes", json=[local_node("m1", "master")])
    assert ctl(admin, tokens, "global", "set", '{"marker": "from-cli"}') == 0
    capsys.readouterr()
    assert ctl(admin, tokens, "global", "get") == 0
    assert json.loads(capsys.readouterr().out) == {"marker": "from-cli"}

    commission = ("nodes", "commission", "m1", "-e", '{"sleep_s": 30}', "--no-cleanup")
    assert ctl(admin, tokens, *commission) == 0
    wait_lines(admin, "TASK [Wait]")
    assert ctl(admin, tokens, "job", "cancel") == 0
    assert "job 1 canceled" in capsys.readouterr().err
    assert ctl(admin, tokens, "job", "get", "active") == 1  # 404: none active
    assert "no job is active" in capsys.readouterr().err
    text = admin.get("/info/job/last", params={"format": "text"}).text
    assert "marker=from-cli" in text

    # --follow on a running job: the whole log, then the end (failed nodes can be commissioned).
    job = admin.post("/commission/nodes", json={"nodes": ["m1"]}).json()
    code = ctl(admin, tokens, "job", "get", "active", "--follow")
    out, err = capsys.readouterr()
    assert code == 0
    assert f"job {job['id']} successful" in err
    assert out.splitlines() == admin.get("/info/job/last", params={"color": "false"}).json()["logs"]
    wait_finished(admin, job["id"])


def test_discover_and_refused_node_jobs(
    admin: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = ctl(
        admin, tokens, "discover", "127.0.0.1", "-e", '{"ansible_connection": "local"}', "--wait"
    )
    assert code == 0
    assert "discover 127.0.0.1" in capsys.readouterr().out
    admin.post("/nodes", json=[local_node("m1", "master")])
    # Not commissioned: update and decommission are refused by the state machine (exit 1).
    assert ctl(admin, tokens, "nodes", "update", "m1", "--wait") == 1
    assert "registered" in capsys.readouterr().err
    assert ctl(admin, tokens, "nodes", "decommission", "m1") == 1
    assert ctl(admin, tokens, "nodes", "update", "m1", role="viewer") == 1
    assert "403" in capsys.readouterr().err
    assert ctl(admin, tokens, "job", "list", "--json", "--limit", "1") == 0
    assert [j["kind"] for j in json.loads(capsys.readouterr().out)] == ["discover"]
