"""With several replicas, a bundle holds every replica's recent log: real `clusterm serve`
processes on one PostgreSQL schema (tests/cluster/replicas.py)."""

from __future__ import annotations

from tests.cluster.conftest import MakeCluster
from tests.cluster.conftest import cluster as cluster  # the fixtures
from tests.cluster.conftest import postgres as postgres
from tests.support.conftest import open_bundle


def test_every_replicas_log_and_a_silent_one_noted(cluster: MakeCluster) -> None:
    a, b, c = cluster().start(3)
    # Each replica says so in its own log: the bundle must hold each one's.
    for replica in (a, b, c):
        r = replica.http.get("/debug/log")
        assert r.status_code == 200
        assert r.headers["x-clusterm-replica"] == replica.id
        assert f"clusterm ready as replica {replica.id}" in r.text
    c.kill()  # gone, but not yet shown as gone: asked, and does not answer

    r = a.http.get("/support/bundle", params={"since": "1h"}, timeout=60)
    assert r.status_code == 200, r.text
    files = open_bundle(r.content)
    for replica in (a, b):
        log = files[f"logs/{replica.id}.log"].decode()
        assert f"clusterm ready as replica {replica.id}" in log
    readme = files["README.txt"].decode()
    # c's row still reads alive (it is shown gone after two lease lengths): asked, no answer.
    assert f"logs/{c.id}.log" not in files
    assert f"replica {c.id} ({c.url}) did not answer GET /debug/log" in readme
    # b's log came over HTTP with the caller's token: b logged that request at V2 or not at all,
    # but the bundle never carries the token itself.
    token = a.cluster.token_file.read_text().strip()
    assert all(token.encode() not in data for data in files.values())
