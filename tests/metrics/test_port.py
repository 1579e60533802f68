"""The metrics port (setting metrics_port): /metrics without a token, and nothing else."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import SettingsError, load_settings
from app.main import create_app
from app.metrics.port import MetricsPortError
from tests.core.test_daemon import CLUSTERM, free_port
from tests.metrics.conftest import parse, value


def test_the_metrics_port_serves_metrics_without_a_token_and_nothing_else(
    data_dir: Path, db_url: str
) -> None:
    port = free_port()
    settings = load_settings(data_dir=data_dir, database_url=db_url, metrics_port=port)
    url = f"http://127.0.0.1:{port}"
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401  # the API's own still needs a token
        scraped = httpx.get(f"{url}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples = parse(scraped.text)
        assert value(samples, "clusterm_cluster_metrics_up") == 1
        assert value(samples, "clusterm_nodes", state="registered") == 0
        odd = {"Accept": "application/openmetrics-text; version=1.x"}
        assert httpx.get(f"{url}/metrics", headers=odd, timeout=10).status_code == 200
        for path in ("/", "/info/nodes", "/metrics/x", "/healthz"):
            other = httpx.get(f"{url}{path}", timeout=10)
            assert other.status_code == 404, path
            assert "only /metrics" in other.text
    # Closed with the app.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/metrics", timeout=10)


def test_no_metrics_port_unless_set(client: TestClient) -> None:
    assert "metrics-port" not in {t.name for t in threading.enumerate()}


def test_the_api_port_is_refused_as_metrics_port(data_dir: Path) -> None:
    with pytest.raises(SettingsError, match="metrics_port 9100 is the API's port"):
        load_settings(data_dir=data_dir, port=9100, metrics_port=9100)
    with pytest.raises(SettingsError, match="invalid setting metrics_port"):
        load_settings(data_dir=data_dir, metrics_port=70000)


def test_a_metrics_port_in_use_stops_the_start_with_its_settings_named(
    data_dir: Path, db_url: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(data_dir=data_dir, database_url=db_url, metrics_port=port)
        with (
            pytest.raises(MetricsPortError, match=f"CLUSTERM_METRICS_PORT.*127.0.0.1:{port}"),
            TestClient(create_app(settings)),
        ):
            pass


def test_serve_with_its_metrics_port_taken_exits_1_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "CLUSTERM_METRICS_PORT": str(port), "CLUSTERM_PORT": str(free_port())}
        env.pop("CLUSTERM_DATABASE_URL", None)
        r = subprocess.run(
            [*CLUSTERM, "serve", "--data-dir", str(data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [
        "clusterm: invalid setting metrics_port/metrics_host (CLUSTERM_METRICS_PORT, "
        f"CLUSTERM_METRICS_HOST): cannot listen on 127.0.0.1:{port}: Address already in use; "
        "stop what holds that port, or set another metrics_port (or metrics_host)"
    ]
    assert not data_dir.exists()  # stopped before the database was made
