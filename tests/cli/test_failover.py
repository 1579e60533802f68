"""`clusterctl --url A --url B`: a request goes to the first replica that can serve it, and a
write is never sent twice. The app is real (TestClient, reached at one URL); the replicas that
cannot serve are real servers on loopback ports (tests/cli/replicas.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from clusterctl import jobs
from clusterctl.api import Api
from clusterctl.main import run
from tests.cli.replicas import closed_port_url, hangs_up, unavailable

APP = "http://replica-b.test:9008"  # where the real app answers


class Ctl(Protocol):
    def __call__(self, *argv: str, urls: list[str]) -> tuple[int, str, str]: ...


@pytest.fixture
def ctl(client: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Ctl:
    def call(*argv: str, urls: list[str]) -> tuple[int, str, str]:
        options = [arg for url in urls for arg in ("--url", url)]
        code = run([*options, "--token", tokens["admin"], *argv], http={APP: client})
        out, err = capsys.readouterr()
        return code, out, err

    return call


def node_names(admin: TestClient) -> list[str]:
    return [n["name"] for n in admin.get("/info/nodes").json()]


def test_a_read_moves_past_a_gone_and_a_starting_replica(ctl: Ctl, admin: TestClient) -> None:
    admin.post("/nodes", json={"name": "n1", "address": "10.0.0.1"})
    with unavailable() as (starting, seen):
        code, out, err = ctl("nodes", "get", "--json", urls=[closed_port_url(), starting, APP])
    assert code == 0, err
    assert [n["name"] for n in json.loads(out)] == ["n1"]
    assert seen.requests == [("GET", "/info/nodes")]


def test_the_replica_that_answered_is_asked_first_next(
    client: TestClient, tokens: dict[str, str]
) -> None:
    with unavailable() as (starting, seen):
        urls = [starting, APP]
        api = Api(urls, dict.fromkeys(urls, tokens["viewer"]), {APP: client})
        try:
            assert api.get("/info/nodes") == []
            assert api.url == APP
            assert api.get("/info/nodes") == []
        finally:
            api.close()
    assert seen.requests == [("GET", "/info/nodes")]  # asked once, not on every request


def test_a_write_moves_on_when_it_could_not_connect(ctl: Ctl, admin: TestClient) -> None:
    # A TLS handshake that fails is a connection not made, as is a refused one.
    with unavailable() as (plain, seen):
        tls_to_plain = plain.replace("http://", "https://")
        urls = [closed_port_url(), tls_to_plain, APP]
        code, _, err = ctl("node", "add", "n1", "--addr", "10.0.0.1", urls=urls)
    assert code == 0, err
    assert node_names(admin) == ["n1"]
    assert seen.requests == []  # the handshake failed before any request was read


def test_a_write_that_was_sent_is_never_sent_again(ctl: Ctl, admin: TestClient) -> None:
    with hangs_up() as (dying, seen):
        code, out, err = ctl("node", "add", "n1", "--addr", "10.0.0.1", urls=[dying, APP])
    assert code == 3
    assert out == ""
    assert f"lost the connection to clusterm at {dying} after sending POST /nodes" in err
    assert "may or may not have been done" in err
    assert seen.requests == [("POST", "/nodes")]
    assert node_names(admin) == []  # not repeated on the next replica


def test_a_write_answered_503_is_the_answer(ctl: Ctl, admin: TestClient) -> None:
    with unavailable() as (starting, seen):
        code, _, err = ctl("node", "add", "n1", "--addr", "10.0.0.1", urls=[starting, APP])
    assert code == 1
    assert err == "clusterctl: starting: migrating the database [503 NotReady]\n"
    assert seen.requests == [("POST", "/nodes")]
    assert node_names(admin) == []


def test_every_url_unreachable_is_exit_3_naming_each(ctl: Ctl) -> None:
    gone = [closed_port_url(), closed_port_url().replace("127.0.0.1", "localhost")]
    code, out, err = ctl("nodes", "get", urls=gone)
    assert code == 3
    assert out == ""
    assert err.startswith("clusterctl: cannot reach clusterm at any of its 2 URLs: ")
    for url in gone:
        assert f"{url}: " in err
    assert "--url (repeatable)" in err
    assert len(err.splitlines()) == 1


def test_a_replica_that_answered_503_when_none_could_serve(ctl: Ctl) -> None:
    with unavailable() as (starting, _):
        gone = closed_port_url()
        code, _, err = ctl("nodes", "get", urls=[gone, starting])
        assert code == 1
        assert "no replica could serve this request" in err
        assert f"{starting}: 503 NotReady: starting: migrating the database" in err
        assert f"{gone}: " in err
        # One URL: the daemon's own refusal, as it always was.
        code, _, err = ctl("nodes", "get", urls=[starting])
        assert code == 1
        assert err == "clusterctl: starting: migrating the database [503 NotReady]\n"


def test_clusterm_url_holds_several_urls_separated_by_commas(
    client: TestClient,
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLUSTERM_URL", f"{closed_port_url()}, {APP}/")
    code = run(["--token", tokens["viewer"], "nodes", "get", "--json"], http={APP: client})
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == []


@pytest.mark.parametrize("url", ["ftp://a:21", "127.0.0.1:9007", "http://a:port", "http://"])
def test_a_url_that_is_not_a_daemons_is_a_usage_error(ctl: Ctl, url: str) -> None:
    code, out, err = ctl("nodes", "get", urls=[APP, url])
    assert code == 2
    assert out == ""
    assert "is not a daemon's URL" in err
    assert "--url" in err


def test_each_url_gets_its_own_token(
    client: TestClient,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --token, a local URL gets the daemon's admin token file (admin_token_file, which
    replicas share), a remote one none."""
    monkeypatch.delenv("CLUSTERM_TOKEN", raising=False)
    monkeypatch.setenv("CLUSTERM_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("CLUSTERM_ADMIN_TOKEN_FILE", str(settings.admin_token_file))
    local, remote = "http://127.0.0.1:9007", "http://cluster.example:9007"
    clients = {local: client, remote: client}
    assert run(["--url", closed_port_url(), "--url", local, "nodes", "get"], http=clients) == 0
    capsys.readouterr()
    # The remote URL answers first, and its answer (no token: 401) is the answer.
    assert run(["--url", remote, "--url", local, "nodes", "get"], http=clients) == 1
    assert "no token" in capsys.readouterr().err


def test_job_follow_waits_out_a_failover_then_gives_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When no URL answers, `job get active --follow` tries again with a growing pause (a
    restart, a handover), from the line it reached, and gives up with exit 3 after a while."""
    pauses: list[float] = []
    monkeypatch.setattr(jobs, "time", SimpleNamespace(sleep=pauses.append))
    gone = closed_port_url()
    code = run(["--url", gone, "--token", "x", "job", "get", "active", "--follow", "--since", "7"])
    err = capsys.readouterr().err
    assert code == 3
    retry = "job: cannot reach clusterm; trying again after line 7"
    assert err.count(retry) == jobs.RECONNECT_TRIES
    assert err.rstrip().endswith("Is the daemon running? Set --url or CLUSTERM_URL")
    assert pauses == sorted(pauses)
    assert pauses[-1] <= 10.0
    assert sum(pauses) >= 30.0  # long enough for a new leader, and for a daemon to restart
