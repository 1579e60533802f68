"""`clusterctl timeline` and `clusterctl node history` against the real app, and `--follow`
against the real daemon."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from clusterctl.main import run
from tests.conftest import node_body
from tests.timeline.conftest import Live, write_events

Ctl = Callable[..., tuple[int, str, str]]
CLUSTERCTL = str(Path(sys.executable).parent / "clusterctl")


@pytest.fixture
def ctl(client: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Ctl:
    def call(*argv: str) -> tuple[int, str, str]:
        code = run(["--token", tokens["viewer"], *argv], http=client)
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def story(db: Database) -> None:
    write_events(db, 1, node="n1", action="register", reason="NodeRegistered", actor="ops")
    write_events(
        db, 1, node="n1", action="commission", reason="PlaybookFailed", result="failed",
        severity="error", job_id=17, from_state="provisioning", to_state="failed", actor="ops",
    )  # fmt: skip
    write_events(db, 1, node="n2", action="register", reason="NodeRegistered", actor="ops")


def test_timeline_prints_readable_columns_oldest_first(ctl: Ctl, story: None) -> None:
    code, out, err = ctl("timeline")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "NODE", "ACTION", "RESULT", "REASON", "DETAILS"]
    rows = [line.split() for line in lines[1:]]
    assert [r[1:5] for r in rows[-3:]] == [
        ["n1", "register", "succeeded", "NodeRegistered"],
        ["n1", "commission", "failed", "PlaybookFailed"],
        ["n2", "register", "succeeded", "NodeRegistered"],
    ]
    assert rows[-2][5:] == ["provisioning->failed", "job=17", "actor=ops"]
    assert "\x1b[" not in out  # not a terminal: no colour codes in a pipe


def test_filters_limit_and_json(ctl: Ctl, story: None) -> None:
    code, out, _ = ctl("timeline", "--node", "n1", "--limit", "1", "--since", "1h", "--json")
    assert code == 0
    page = json.loads(out)
    assert [(e["node"], e["reason"]) for e in page["items"]] == [("n1", "PlaybookFailed")]
    assert page["next_before_id"] is not None
    code, out, _ = ctl("timeline", "-n", "n1", "-n", "n2", "--result", "failed", "--json")
    assert [e["job_id"] for e in json.loads(out)["items"]] == [17]


def test_actor_filter(ctl: Ctl, story: None, db: Database) -> None:
    write_events(db, 1, node="n3", action="register", reason="NodeRegistered", actor="ci-bot")
    code, out, err = ctl("timeline", "--actor", "ci-bot", "--json")
    assert code == 0, err
    assert [(e["node"], e["actor"]) for e in json.loads(out)["items"]] == [("n3", "ci-bot")]
    code, out, _ = ctl("timeline", "--actor", "ops", "--actor", "ci-bot", "--json")
    assert len(json.loads(out)["items"]) == 4


def test_failures_are_highlighted_on_a_terminal(
    ctl: Ctl, story: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, _ = ctl("timeline", "--node", "n1")
    assert code == 0
    failed = next(line for line in out.splitlines() if "PlaybookFailed" in line)
    ok = next(line for line in out.splitlines() if "NodeRegistered" in line)
    assert failed.startswith("\x1b[31m")  # red
    assert "\x1b[" not in ok


def test_node_history_outlives_the_node(ctl: Ctl, admin: TestClient) -> None:
    admin.post("/nodes", json=node_body("n1"))
    admin.delete("/nodes/n1")
    code, out, err = ctl("node", "history", "n1")
    assert code == 0, err
    assert [line.split()[2] for line in out.splitlines()[1:]] == ["register", "delete"]
    code, _, err = ctl("node", "history", "ghost")
    assert code == 1
    assert "no node named 'ghost'" in err


def test_bad_since_is_refused_with_the_parameter_named(ctl: Ctl) -> None:
    code, out, err = ctl("timeline", "--since", "last week")
    assert code == 1
    assert out == ""
    assert err.startswith("clusterctl: since: 'last week' is neither")


def test_follow_prints_new_events_as_they_happen(live: Live) -> None:
    write_events(live.db, 1, node="n0", action="register", reason="NodeRegistered")
    proc = subprocess.Popen(
        [CLUSTERCTL, "--url", live.url, "--token", live.tokens["viewer"], "timeline", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CLUSTERM_TOKEN"},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def next_line_with(text: str) -> str:
        while True:
            line = lines.get(timeout=20)
            if text in line:
                return line

    try:
        next_line_with(" n0 ")  # the page is printed first
        with live.http("admin") as http:
            assert http.post("/nodes", json=node_body("n9")).status_code == 201
        line = next_line_with(" n9 ")
        assert line.split()[2:5] == ["register", "succeeded", "NodeRegistered"]
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the normal way out of --follow
        code = proc.wait(20)
        reader.join(5)
        stdout.close()
        err = proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert code == 0, err


def test_follow_stops_with_the_reason_when_its_token_is_revoked(live: Live) -> None:
    from app.auth import service as auth

    with live.db.write() as session:
        token = auth.create_token(session=session, name="leaving", role="viewer")
    proc = subprocess.Popen(
        [CLUSTERCTL, "--url", live.url, "--token", token, "timeline", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CLUSTERM_TOKEN"},
    )
    assert proc.stdout is not None
    try:
        # Only once an event has come through the live stream is the token revoked: the stream
        # itself must end (it re-checks its token every 5 s through a 2 s cache), and clusterctl
        # must stop and say why rather than reconnect forever.
        with live.http("admin") as http:
            assert http.post("/nodes", json=node_body("n7")).status_code == 201
        for line in proc.stdout:
            if " n7 " in line:
                break
        with live.db.write() as session:
            auth.revoke_token(session=session, name="leaving")
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    err = proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    assert code == 1, err
    assert "stream ended" in err, err
