"""`clusterctl job get ID` and `--follow` on the log stream, against the real app: any job by its
id, a finished one followed to its status, and a stream broken mid-job resumed on the next URL."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from clusterctl.main import run
from tests.jobs.conftest import job_settings, local_node, wait_finished
from tests.polling import wait_until
from tests.timeline.conftest import serve

# Ansible's behaviour, not the database's: SQLite only (tests/conftest.py).
pytestmark = pytest.mark.backend_independent


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    return job_settings(data_dir, db_url, job_dirs_kept=2)


def ctl(client: TestClient, tokens: dict[str, str], *argv: str) -> int:
    return run(["--token", tokens["admin"], *argv], http=client)


def run_job(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    return wait_finished(client, response.json()["id"])


def test_job_get_by_id_and_follow_a_finished_job(
    admin: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    admin.post("/nodes", json=[local_node("m1", "master"), local_node("w1")])
    ok = run_job(admin, "/commission/nodes", {"nodes": ["m1"], "host_group": "master"})
    failed = run_job(
        admin, "/commission/nodes", {"nodes": ["w1"], "extra_vars": {"fail_hosts": ["w1"]}}
    )
    log = admin.get(f"/jobs/{ok['id']}/log", params={"color": "false"}).json()["logs"]

    assert ctl(admin, tokens, "job", "get", str(ok["id"])) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"job {ok['id']}: commission nodes m1 as master (by ")
    assert out.splitlines()[-len(log) :] == log
    assert ctl(admin, tokens, "job", "get", str(ok["id"]), "--json", "--tail", "1") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["logs"]) == (ok["id"], log[-1:])

    # Followed after its end: the log from the cursor on, then its result as the exit code.
    assert ctl(admin, tokens, "job", "get", str(ok["id"]), "--follow") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == log
    assert f"job {ok['id']} successful (rc 0)" in err
    assert ctl(admin, tokens, "job", "get", str(ok["id"]), "--follow", "--since", "3") == 0
    assert capsys.readouterr().out.splitlines() == log[3:]
    assert ctl(admin, tokens, "job", "get", "last", "--follow") == 4
    out, err = capsys.readouterr()
    assert out.splitlines() == admin.get("/info/job/last", params={"color": "false"}).json()["logs"]
    assert f"job {failed['id']} failed" in err

    # Filters from the command line.
    assert ctl(admin, tokens, "job", "list", "--node", "w1", "--json") == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)] == [failed["id"]]
    assert ctl(admin, tokens, "job", "list", "--kind", "comission") == 1
    assert "commission, decommission" in capsys.readouterr().err

    # job_dirs_kept (2) newer jobs: the first job's log is gone, and the error says why.
    run_job(admin, "/discover/nodes", {"addrs": ["127.0.0.1"]})
    wait_until(
        lambda: admin.get(f"/jobs/{ok['id']}/log").status_code == 410,
        timeout_s=10,
        what="the first job's log to be dropped",
    )
    assert ctl(admin, tokens, "job", "get", str(ok["id"])) == 1
    assert "job_dirs_kept" in capsys.readouterr().err
    assert ctl(admin, tokens, "job", "get", "99") == 1
    assert "no job with id 99" in capsys.readouterr().err
    assert ctl(admin, tokens, "job", "get", "first") == 2
    assert "give active, last or a job's id" in capsys.readouterr().err


@contextmanager
def cutting_proxy(upstream: str) -> Iterator[tuple[str, threading.Event]]:
    """A TCP proxy in front of `upstream` that hangs up the first log stream through it as soon
    as a line event has passed: a replica's connection lost in the middle of a job."""
    target = urlsplit(upstream)
    cut = threading.Event()

    class Pipe(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            up = socket.create_connection((target.hostname or "", target.port or 80))
            # Requests on one kept-alive connection: the stream may follow a plain GET.
            self.streaming = threading.Event()
            feeder = threading.Thread(target=self._feed, args=(up,), daemon=True)
            feeder.start()
            try:
                while data := up.recv(65536):
                    self.request.sendall(data)
                    if self.streaming.is_set() and b"event: line" in data and not cut.is_set():
                        cut.set()
                        break
            except OSError:
                pass
            finally:
                up.close()
                self.request.shutdown(socket.SHUT_RDWR)

        def _feed(self, up: socket.socket) -> None:
            try:
                while data := self.request.recv(65536):
                    if b"/log/stream" in data:
                        self.streaming.set()
                    up.sendall(data)
            except OSError:
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Pipe)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", cut
    finally:
        server.shutdown()
        server.server_close()


def test_follow_resumes_on_the_next_url_after_the_stream_breaks(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(settings) as url, cutting_proxy(url) as (through_proxy, cut):
        token = settings.admin_token_file.read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
            assert http.post("/nodes", json=[local_node("m1", "master")]).status_code == 201
            job = http.post(
                "/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 2}}
            ).json()
            code = run(
                [
                    "--url",
                    through_proxy,
                    "--url",
                    url,
                    "--token",
                    token,
                    "job",
                    "get",
                    "active",
                    "-f",
                ]
            )
            out, err = capsys.readouterr()
            assert cut.is_set(), "the stream through the proxy was cut"
            assert "trying again after line" in err
            assert code == 0, err
            assert f"job {job['id']} successful" in err
            full = http.get(f"/jobs/{job['id']}/log", params={"color": "false"}).json()["logs"]
            assert out.splitlines() == full, "every line once, in order, across the break"
