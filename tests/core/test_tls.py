"""HTTPS: a real `clusterm serve` with tls_cert_file/tls_key_file, and clusterctl checking it."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
import yaml

from clusterctl.main import run
from tests.core.server import Server
from tests.core.test_compose import ROOT
from tests.core.test_daemon import CLUSTERM


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return chain, key, ca_file


@pytest.fixture
def server(
    tmp_path: Path, db_url: str, cert_files: tuple[Path, Path, Path], ca: trustme.CA
) -> Iterator[Server]:
    chain, key, _ = cert_files
    verify = ssl.create_default_context()
    ca.configure_trust(verify)
    server = Server(
        tmp_path / "data", tmp_path / "stderr.log", db_url, tls=(chain, key), verify=verify
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_clusterctl_trusts_the_daemon_through_its_ca(
    server: Server,
    cert_files: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca_file = cert_files[2]
    token = server.admin_token
    monkeypatch.delenv("CLUSTERM_CA_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)

    # --ca-file: verified, and the request goes through
    args = ["--url", server.url, "--token", token]
    assert run([*args, "--ca-file", str(ca_file), "node", "add", "n1", "--addr", "10.0.0.1"]) == 0
    assert "n1" in capsys.readouterr().out
    assert run([*args, "--ca-file", str(ca_file), "nodes", "get", "--json"]) == 0
    assert [n["name"] for n in json.loads(capsys.readouterr().out)] == ["n1"]

    # CLUSTERM_CA_FILE does the same
    monkeypatch.setenv("CLUSTERM_CA_FILE", str(ca_file))
    assert run([*args, "nodes", "get", "--json"]) == 0
    assert [n["name"] for n in json.loads(capsys.readouterr().out)] == ["n1"]
    monkeypatch.delenv("CLUSTERM_CA_FILE")

    # without it, the system's CAs do not know this one: exit 3, and what to do
    assert run([*args, "nodes", "get"]) == 3
    err = capsys.readouterr().err
    assert f"cannot trust clusterm at {server.url}" in err
    assert "certificate verify failed" in err or "unable to get local issuer" in err
    assert "--ca-file or CLUSTERM_CA_FILE" in err

    # another CA's file: refused the same way
    other = trustme.CA()
    other_file = ca_file.parent / "other-ca.pem"
    other.cert_pem.write_to_path(str(other_file))
    assert run([*args, "--ca-file", str(other_file), "nodes", "get"]) == 3
    assert "cannot trust clusterm" in capsys.readouterr().err


def test_plain_http_to_the_tls_port_fails(
    server: Server, cert_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    http_url = server.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{http_url}/readyz", timeout=5)
    code = run(["--url", http_url, "--token", server.admin_token, "nodes", "get"])
    assert code == 3
    err = capsys.readouterr().err
    assert f"cannot reach clusterm at {http_url}" in err
    assert "use an https:// URL" in err
    # the daemon is still serving HTTPS afterwards
    assert httpx.get(f"{server.url}/readyz", verify=server.verify).status_code == 200


def test_a_bad_ca_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pem"
    code = run(["--url", "https://127.0.0.1:9", "--ca-file", str(missing), "nodes", "get"])
    assert code == 2
    assert f"--ca-file (CLUSTERM_CA_FILE) {missing}: cannot be used" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    code = run(["--url", "https://127.0.0.1:9", "--ca-file", str(garbage), "nodes", "get"])
    assert code == 2
    assert "cannot be used" in capsys.readouterr().err


def serve_once(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`clusterm serve` with `env`, for a start-up that must fail (it returns at once)."""
    return subprocess.run(
        [*CLUSTERM, "serve", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_certificate_that_cannot_be_loaded_stops_the_start_up(
    tmp_path: Path, cert_files: tuple[Path, Path, Path]
) -> None:
    chain, _, ca_file = cert_files
    env = {
        **os.environ,
        "CLUSTERM_TLS_CERT_FILE": str(chain),
        "CLUSTERM_TLS_KEY_FILE": str(ca_file),  # a certificate where the key should be
    }
    r = serve_once(tmp_path, env)
    assert r.returncode == 2
    assert "invalid setting tls_cert_file/tls_key_file" in r.stderr
    assert str(chain) in r.stderr
    env["CLUSTERM_TLS_KEY_FILE"] = ""
    r = serve_once(tmp_path, env)
    assert r.returncode == 2
    assert "tls_key_file" in r.stderr


def test_the_compose_health_check_speaks_https(server: Server) -> None:
    """docker-compose.yml's probe cannot run here in Docker; run its command against the port."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    probe = compose["services"]["clusterm"]["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"]
    code = probe[3].replace(":9007/", f":{server.port}/")
    env = {**os.environ, "CLUSTERM_TLS_CERT_FILE": "/etc/clusterm/cert.pem"}
    ok = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    env.pop("CLUSTERM_TLS_CERT_FILE")
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
    assert plain.returncode != 0  # plain HTTP to the TLS port is not healthy
