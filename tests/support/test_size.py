"""The size bound (newest kept first), the stream, and clusterctl support-bundle."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.support.tarstream import member_cost
from clusterctl.main import run
from tests.jobs.conftest import local_node, wait_finished
from tests.support.conftest import open_bundle
from tests.timeline.conftest import serve

BUDGET = 96 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"support_bundle_max_bytes": BUDGET})


def run_jobs(client: TestClient | httpx.Client, count: int, lines: int) -> list[int]:
    client.post("/nodes", json=[local_node("m1", "master")])
    ids = []
    for n in range(count):
        route = "/update/nodes" if n else "/commission/nodes"
        r = client.post(route, json={"nodes": ["m1"], "extra_vars": {"print_lines": lines}})
        assert r.status_code == 202, r.text
        ids.append(wait_finished(client, r.json()["id"])["id"])
    return ids


def test_newest_kept_first_and_readme_says_what_was_left_out(admin: TestClient) -> None:
    ids = run_jobs(admin, 4, 3000)  # each log ~50 KB: they cannot all fit in 96 KiB
    r = admin.get("/support/bundle")
    assert r.status_code == 200
    files = open_bundle(r.content)
    assert sum(member_cost(len(data)) for data in files.values()) + 1024 <= BUDGET
    readme = files["README.txt"].decode()
    left_out = readme.split("Cut or left out (over the size budget):\n")[1].split("\n\n")[0]

    # The newest job is there whole; the jobs kept are the newest ones.
    newest = ids[-1]
    assert f"jobs/{newest}/" not in left_out
    assert "PLAY RECAP" in files[f"jobs/{newest}/log.txt"].decode()
    kept = sorted(int(m[1]) for name in files if (m := re.match(r"jobs/(\d+)/job.json$", name)))
    assert kept == ids[len(ids) - len(kept) :]
    # Some job did not fit whole, and whatever did not is listed.
    whole = [i for i in kept if f"jobs/{i}/log.txt" in files and f"jobs/{i}/" not in left_out]
    assert whole != ids
    for job_id in ids:
        if job_id not in whole:
            assert re.search(rf"jobs[ /]([0-9, ]*\b)?{job_id}\b", left_out), (job_id, left_out)
    # A log that was cut keeps its newest lines: its end, not its start.
    for job_id in kept:
        log = f"jobs/{job_id}/log.txt"
        if f"{log}: its oldest" in left_out:
            assert "PLAY RECAP" in files[log].decode()
            assert "PLAY [" not in files[log].decode()
    # The timeline kept is the newest: its last event is the download's own audit neighbour.
    events = [json.loads(line) for line in files["timeline.jsonl"].decode().splitlines()]
    latest = admin.get("/info/timeline", params={"limit": 1}).json()["items"][0]
    assert events[-1]["id"] >= latest["id"] - 1


def test_the_bundle_is_streamed_in_pieces(settings: Settings, tmp_path: Path) -> None:
    big = settings.model_copy(update={"support_bundle_max_bytes": 50 * 1000 * 1000})
    with serve(big) as url:
        token = big.admin_token_file.read_text().strip()
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as client:
            run_jobs(client, 1, 60_000)  # a log of ~1 MB
            with client.stream("GET", "/support/bundle") as response:
                assert response.status_code == 200
                assert response.headers.get("transfer-encoding") == "chunked"
                assert "content-length" not in response.headers
                pieces = [len(chunk) for chunk in response.iter_raw()]
            assert len(pieces) > 3, pieces
            assert max(pieces) < sum(pieces) / 2  # sent as made, not built whole first

            # clusterctl support-bundle -o against the real daemon.
            target = tmp_path / "bundle.tar.gz"
            assert run(["--url", url, "--token", token, "support-bundle", "-o", str(target)]) == 0
    with tarfile.open(target, mode="r:gz") as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers()]
    assert {"README.txt", "jobs/1/log.txt", "timeline.jsonl", "nodes.json"} <= set(names)
    assert not list(tmp_path.glob(".*.part"))


def test_clusterctl_default_file_name(
    admin: TestClient,
    tokens: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert run(["--token", tokens["operator"], "support-bundle", "--since", "1h"], http=admin) == 0
    [saved] = here.glob("clusterm-support-*.tar.gz")
    assert re.fullmatch(r"clusterm-support-\d{8}T\d{6}Z\.tar\.gz", saved.name)
    assert f"saved the support bundle to {saved.name}" in capsys.readouterr().err
    with tarfile.open(saved, mode="r:gz") as tar:
        assert any(m.name.endswith("/README.txt") for m in tar.getmembers())
    # Refused: a viewer, and a bad window (exit 1, the daemon's message).
    assert run(["--token", tokens["viewer"], "support-bundle"], http=admin) == 1
    assert "operator" in capsys.readouterr().err
    assert (
        run(["--token", tokens["operator"], "support-bundle", "--since", "soon"], http=admin) == 1
    )
    assert "since" in capsys.readouterr().err
    assert [p.name for p in here.iterdir()] == [saved.name]  # no file from the refusals
