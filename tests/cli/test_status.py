"""`clusterctl status` against the real app: the replicas, which one leads, which cannot."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient

from app.cluster.models import Replica
from app.db import Database
from clusterctl.main import run
from tests.cli.replicas import closed_port_url

APP = "http://replica-a.test:9007"


def status(
    client: TestClient, token: str, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    gone = closed_port_url()
    code = run(["--url", gone, "--url", APP, "--token", token, "status", *argv], http={APP: client})
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def others(db: Database) -> None:
    """Two more replicas as their rows stand: an older version that may not lead, one gone."""
    now = dt.datetime.now(dt.UTC)
    with db.write() as session:
        session.add_all(
            [
                Replica(
                    id="old:9008", advertise_url="http://old.example:9008", version="0.9.0",
                    schema="0007", hostname="old", pid=41, role="follower", role_since=now,
                    can_lead=False, note="its schema 0007 is older than the database's 0008",
                    started_at=now, seen_at=now,
                ),
                Replica(
                    id="lost:9009", advertise_url="http://lost.example:9009", version="1.0.0",
                    schema="0008", hostname="lost", pid=42, role="follower",
                    role_since=now - dt.timedelta(hours=2), can_lead=True, note=None,
                    started_at=now - dt.timedelta(hours=2), seen_at=now - dt.timedelta(hours=1),
                ),
            ]
        )  # fmt: skip


def test_status_shows_the_replicas_and_the_leader(
    client: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str], others: None
) -> None:
    code, out, err = status(client, tokens["viewer"], capsys, "--json")
    assert code == 0, err
    data = json.loads(out)
    me = data["answered_by"]
    assert data["leader"] == me  # one SQLite daemon: it leads
    assert f"answered by {APP} (replica {me}); leader: {me}" in err

    code, out, err = status(client, tokens["viewer"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"answered by {APP} (replica {me}); leader: {me}"
    assert lines[1].split() == ["ID", "ADDRESS", "ROLE", "SINCE", "VERSION", "SEEN", "NOTE"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {me, "old:9008", "lost:9009"}
    assert lines[2].split()[0] == me  # the leader first
    leader = next(r for r in data["replicas"] if r["id"] == me)
    assert rows[me].split()[1:3] == [leader["advertise_url"], "leader"]
    assert rows[me].split()[-1] == "-"
    old = rows["old:9008"]
    assert old.split()[1:3] == ["http://old.example:9008", "follower"]
    assert "0.9.0" in old.split()
    assert old.endswith("cannot lead: its schema 0007 is older than the database's 0008")
    assert rows["lost:9009"].split()[2] == "gone"
    # aligned columns: every row's role starts under ROLE
    assert {line.index(line.split()[2]) for line in lines[2:]} == {lines[1].index("ROLE")}
