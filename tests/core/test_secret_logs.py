"""Secrets stay out of the daemon's log at every verbosity: a real `clusterm serve` at V5 (every
SQL statement logged), a scripted session that stores node var secrets, creates tokens and uses
them, runs a job and meets errors; then the log is searched for each secret and token."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from app.db import Database
from app.logs import JsonFormatter, TextFormatter
from app.nodes.models import Node
from tests.core.server import Server
from tests.core.test_daemon import CLUSTERM
from tests.jobs.conftest import local_node, wait_finished

SECRETS = ("s3cr3t-become-7f1e", "s3cr3t-registry-4b2a", "s3cr3t-patched-9c0d")


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[Server]:
    server = Server(tmp_path / "data", tmp_path / "stderr.log", db_url, CLUSTERM_LOG_LEVEL="info")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def create_token(server: Server, role: str, *extra: str) -> str:
    r = subprocess.run(
        [*CLUSTERM, "token", "create", "--role", role, "--name", role, *extra,
         "--data-dir", str(server.data_dir)],
        env={**os.environ, "CLUSTERM_DATABASE_URL": server.db_url},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # the creating command says nothing but the token, on stdout
    return r.stdout.strip()


def test_no_secret_or_token_reaches_the_log_at_v5(server: Server) -> None:
    admin = server.client()
    raised = admin.put("/debug/flags/v", content=b"5", params={"ttl": "10m"})
    assert raised.status_code == 200, raised.text

    viewer_token = create_token(server, "viewer", "--ttl", "1h")
    operator_token = create_token(server, "operator")
    viewer, operator = server.client(viewer_token), server.client(operator_token)

    become, registry, patched = SECRETS
    node = local_node("m1", "master")
    node["vars"] |= {"ansible_become_password": become, "registry": {"password": registry}}
    assert admin.post("/nodes", json=node).status_code == 201
    change = {"vars": {**node["vars"], "ansible_become_password": patched}}
    assert admin.patch("/nodes/m1", json=change).json()["vars"]["ansible_become_password"] == (
        patched
    )
    for client in (viewer, operator):
        for path in ("/info/nodes", "/info/node/m1", "/info/timeline"):
            r = client.get(path)
            assert r.status_code == 200, r.text
            assert not any(secret in r.text for secret in SECRETS), path
    assert viewer.get("/info/node/m1").json()["vars"]["ansible_become_password"] == "<redacted>"

    # errors on the way: a duplicate, a refused role, a bad token, an unknown node
    assert admin.post("/nodes", json=node).status_code == 409
    assert viewer.post("/nodes", json=node).status_code == 403
    stranger = httpx.get(f"{server.url}/info/nodes", headers={"Authorization": f"Bearer {become}"})
    assert stranger.status_code == 401
    assert admin.get("/info/node/nope").status_code == 404

    job = operator.post("/commission/nodes", json={"nodes": ["m1"]})
    assert job.status_code == 202, job.text
    assert wait_finished(operator, job.json()["id"], timeout_s=120)["status"] == "successful"

    server.stop()
    log = server.stderr()
    # The test means something: V5 logged every SQL statement, each with its parameters hidden.
    assert "SELECT" in log
    assert "[SQL parameters hidden due to hide_parameters=True]" in log
    tokens = (server.admin_token, viewer_token, operator_token)
    digests = [hashlib.sha256(token.encode()).hexdigest() for token in tokens]
    for secret in (*SECRETS, *tokens, *digests):
        assert secret not in log, f"{secret[:12]}... is in the daemon's log"


def test_an_error_quoting_a_stored_row_is_logged_without_it(
    admin: TestClient, db: Database, db_url: str
) -> None:
    """PostgreSQL quotes the row of a failed statement in its error (`DETAIL: Failing row
    contains (...)`), a node's vars with it; the log shows the error, not the row."""
    secret = "s3cr3t-in-a-row-5e6f"
    admin.post("/nodes", json={"name": "n1", "address": "10.0.0.1", "vars": {"pw": secret}})
    with pytest.raises(IntegrityError) as caught, db.write() as session:
        session.execute(sa.update(Node).where(Node.name == "n1").values(name=None))
    if db_url.startswith("postgresql"):
        assert secret in str(caught.value.orig)  # what would be logged without the rule
    for formatter in (TextFormatter(), JsonFormatter()):
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(formatter)
        logger = logging.getLogger("clusterm.test_secret_logs")
        logger.addHandler(handler)
        try:
            try:
                raise caught.value
            except IntegrityError as exc:
                logger.error("a write failed: %s", exc, exc_info=True)
        finally:
            logger.removeHandler(handler)
        line = out.getvalue()
        assert "IntegrityError" in line
        assert "node" in line
        assert secret not in line
        assert line.count("\n") == 1  # still one line per record
