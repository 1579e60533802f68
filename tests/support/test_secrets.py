"""No secret reaches a support bundle: one of each kind planted, every member searched."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.config import Settings, load_settings
from app.main import create_app
from app.support.redact import REDACTED, redacted_settings
from tests.jobs.conftest import LOCAL_VARS, job_settings, local_node, wait_finished
from tests.support.conftest import open_bundle
from tests.verbosity.conftest import TOKEN, Pki, component_settings


def plant(tmp_path: Path, db_url: str, pki: Pki) -> tuple[Settings, dict[str, str]]:
    """Settings holding a secret of every kind, and the secrets by kind."""
    found = {
        kind: f"{kind.replace(' ', '-')}-{secrets.token_hex(8)}"
        for kind in (
            "database password",
            "tls key",
            "ssh key",
            "extra var",
            "ansible env",
            "client key",
        )
    }
    found["component token"] = TOKEN  # what the kubelet's token_file holds
    tls_key, ssh_key, client_key = (tmp_path / n for n in ("tls.key", "id_ed25519", "client.key"))
    tls_key.write_text(f"-----BEGIN PRIVATE KEY-----\n{found['tls key']}\n")
    ssh_key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{found['ssh key']}\n")
    client_key.write_text(f"-----BEGIN PRIVATE KEY-----\n{found['client key']}\n")
    tls_key.chmod(0o600)
    ssh_key.chmod(0o600)
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        # The test server trusts local connections: any password connects.
        db_url = url.set(password=found["database password"]).render_as_string(hide_password=False)
    else:
        del found["database password"]  # an SQLite URL has none (test_redaction covers it)
    components = component_settings(pki)
    components["kube-proxy"] = {"client_cert_file": pki.ca_file, "client_key_file": client_key}
    settings = job_settings(
        tmp_path / "data",
        db_url,
        tls_cert_file=pki.ca_file,
        tls_key_file=tls_key,
        ssh_private_key_file=ssh_key,
        extra_vars={"vault_password": found["extra var"]},
        ansible_env={"SOME_SERVICE_TOKEN": found["ansible env"]},
        verbosity_components=components,
    )
    return settings, found


def test_no_secret_in_any_member(tmp_path: Path, db_url: str, pki: Pki) -> None:
    settings, found = plant(tmp_path, db_url, pki)
    node_secret, request_secret = (secrets.token_hex(12) for _ in range(2))
    found["node var"], found["request extra var"] = node_secret, request_secret
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        admin_token = settings.admin_token_file.read_text().strip()
        found["admin token"] = admin_token
        client.headers["Authorization"] = f"Bearer {admin_token}"
        m1 = local_node("m1", "master", vars={**LOCAL_VARS, "db_password": node_secret})
        assert client.post("/nodes", json=[m1]).status_code == 201
        r = client.post(
            "/commission/nodes",
            json={"nodes": ["m1"], "extra_vars": {"api_password": request_secret}},
        )
        assert r.status_code == 202, r.text
        assert wait_finished(client, r.json()["id"])["status"] == "successful"
        # Loud: clusterm's own log at V5 while the bundle is made.
        assert client.put("/debug/flags/v", content="5").status_code == 200
        r = client.get("/support/bundle")
        assert r.status_code == 200, r.text
    files = open_bundle(r.content)
    # The parts searched: a job's log, the settings, clusterm's own log at V5.
    assert "PLAY RECAP" in files["jobs/1/log.txt"].decode()
    assert "settings.json" in files
    assert any(name.startswith("logs/") and len(data) > 1000 for name, data in files.items())
    for name, data in files.items():
        for kind, secret in found.items():
            assert secret.encode() not in data, f"the {kind} is in {name}"
    # What stays readable: the var names, so support can tell what is set.
    nodes = json.loads(files["nodes.json"])
    assert nodes[0]["vars"]["db_password"] == REDACTED
    shown = json.loads(files["settings.json"])
    assert shown["extra_vars"] == {"vault_password": REDACTED}
    assert shown["ansible_env"] == {"SOME_SERVICE_TOKEN": REDACTED}


def test_redaction_rule_one_setting_of_each_kind(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://clusterm:pw-in-url@db.example:5432/clusterm"
        "?sslkey=/etc/key.pem&sslmode=require",
        tls_cert_file="/etc/clusterm/tls.crt",
        tls_key_file="/etc/clusterm/tls.key",
        ssh_private_key_file="/etc/clusterm/id_ed25519",
        extra_vars={"vault_password": "v1", "ntp_server": "ntp.example"},
        ansible_env={"HTTPS_PROXY": "http://u:proxy-pw@proxy:3128"},
        verbosity_components={
            "kubelet": {"token_file": "/etc/kubelet.token", "ca_file": "/etc/ca.pem"},
            "kube-proxy": {"client_cert_file": "/etc/c.pem", "client_key_file": "/etc/c.key"},
        },
    )
    shown = redacted_settings(settings)
    flat = json.dumps(shown)
    for secret in (
        "pw-in-url",
        "/etc/key.pem",
        "tls.key",
        "id_ed25519",
        "v1",
        "proxy-pw",
        "kubelet.token",
        "c.key",
        "admin.token",
    ):
        assert secret not in flat, secret
    assert shown["database_url"].startswith("postgresql+psycopg://clusterm:<redacted>@db.example")
    assert "sslmode=" in shown["database_url"]
    assert shown["extra_vars"] == {"vault_password": REDACTED, "ntp_server": REDACTED}
    assert shown["verbosity_components"]["kubelet"]["ca_file"] == "/etc/ca.pem"
    assert shown["verbosity_components"]["kube-proxy"]["client_cert_file"] == "/etc/c.pem"
    # Kept: what is public, and what tells support how the daemon is set up.
    assert shown["tls_cert_file"] == "/etc/clusterm/tls.crt"
    assert shown["ssh_host_key_policy"] == "accept-new"
    assert shown["job_dirs_kept"] == settings.job_dirs_kept


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("admin_token_file", True),
        ("tls_key_file", True),
        ("ssh_private_key_file", True),
        ("client_key_file", True),
        ("token_file", True),
        ("some_future_password", True),
        ("ssh_host_key_policy", False),
        ("tls_cert_file", False),
        ("ca_file", False),
        ("job_dirs_kept", False),
    ],
)
def test_which_names_are_credentials(name: str, credential: bool) -> None:
    from app.support.redact import is_credential

    assert is_credential(name) is credential
