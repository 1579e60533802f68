"""`GET /verbosity/components`, `GET /verbosity` as text, and `clusterctl verbosity rbac`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from clusterctl.main import run
from tests.verbosity.conftest import TOKEN, Pki, register
from tests.verbosity.emulator import Emulator

Ctl = Callable[..., tuple[int, str, str]]
NAMES = ["kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubelet", "kube-proxy"]
KEY_TEXT = "-----BEGIN"


@pytest.fixture
def client_cert(pki: Pki) -> tuple[Path, Path]:
    cert = pki.ca.issue_cert("clusterm")
    cert_file, key_file = pki.directory / "clusterm.pem", pki.directory / "clusterm.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


@pytest.fixture
def ctl(client: TestClient, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Ctl:
    def call(*argv: str, role: str = "viewer") -> tuple[int, str, str]:
        code = run(["--token", tokens[role], *argv], http=client)
        out, err = capsys.readouterr()
        return code, out, err

    return call


def secrets(pki: Pki, client_cert: tuple[Path, Path]) -> list[str]:
    """Every credential and every path to one: none may appear in an answer."""
    files = [pki.token_file, pki.ca_file, *client_cert]
    return [TOKEN, KEY_TEXT, str(pki.directory), *(str(f) for f in files)]


@pytest.fixture
def settings_overrides(client_cert: tuple[Path, Path]) -> dict[str, Any]:
    cert_file, key_file = client_cert
    certs = {"client_cert_file": cert_file, "client_key_file": key_file}
    return {"verbosity_components": {"kube-scheduler": certs, "kubelet": certs}}


def by_name(client: TestClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = client.get("/verbosity/components", headers=headers)
    assert r.status_code == 200, r.text
    return {c["name"]: c for c in r.json()}


def test_components_say_how_each_is_reached_and_never_what_the_credentials_are(
    client: TestClient,
    as_role: Callable[[str], dict[str, str]],
    pki: Pki,
    client_cert: tuple[Path, Path],
) -> None:
    found = by_name(client, as_role("viewer"))
    assert list(found) == NAMES
    scheduler = found["kube-scheduler"]
    assert scheduler == {
        "name": "kube-scheduler",
        "scheme": "https",
        "port": 10259,
        "path": "/debug/flags/v",
        "via_apiserver": False,
        "apiserver_node": None,
        "url": "https://{node}:10259/debug/flags/v",
        "host_groups": ["master"],
        "baseline_level": 2,
        "credentials_from": "kube-scheduler",
        "token": True,
        "client_cert": True,
        "ca": True,
        "insecure_skip_tls_verify": False,
        "authorization": "non-resource-url",
    }
    assert (found["kube-apiserver"]["client_cert"], found["kube-apiserver"]["token"]) == (
        False,
        True,
    )
    proxy = found["kube-proxy"]
    assert (proxy["scheme"], proxy["token"], proxy["ca"], proxy["authorization"]) == (
        "http",
        False,
        False,
        "none",
    )
    assert found["kubelet"]["authorization"] == "nodes/proxy"
    assert found["kubelet"]["host_groups"] == ["master", "worker"]
    for answer in (
        client.get("/verbosity/components", headers=as_role("viewer")).text,
        client.get("/verbosity/components?format=text", headers=as_role("admin")).text,
    ):
        for secret in secrets(pki, client_cert):
            assert secret not in answer


def test_components_as_text(client: TestClient, as_role: Callable[[str], dict[str, str]]) -> None:
    r = client.get("/verbosity/components", headers={**as_role("viewer"), "Accept": "text/plain"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    header, *lines = r.text.splitlines()
    assert header.split()[:3] == ["COMPONENT", "URL", "GROUPS"]
    rows = {line.split()[0]: line.split() for line in lines}
    assert list(rows) == NAMES
    assert rows["kubelet"][:4] == [
        "kubelet",
        "https://{node}:10250/debug/flags/v",
        "master,worker",
        "2",
    ]
    assert " ".join(rows["kubelet"]).endswith("update nodes/proxy")
    assert " ".join(rows["kube-apiserver"]).endswith("put /debug/flags/v")
    assert rows["kube-proxy"][-1] == "-"
    r = client.get("/verbosity/components", params={"format": "yaml"}, headers=as_role("viewer"))
    assert r.status_code == 422
    assert "'json' or 'text'" in r.json()["message"]


def documents(out: str) -> tuple[dict[str, Any], dict[str, Any]]:
    role, binding = list(yaml.safe_load_all(out))
    return role, binding


def test_rbac_for_the_components_reached_directly(ctl: Ctl) -> None:
    code, out, err = ctl("verbosity", "rbac")
    assert code == 0, err
    role, binding = documents(out)
    assert role == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "clusterm-verbosity"},
        "rules": [
            {"nonResourceURLs": ["/debug/flags/v"], "verbs": ["put"]},
            {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["update"]},
        ],
    }
    assert binding == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "clusterm-verbosity"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "clusterm-verbosity",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "clusterm"}],
    }
    assert "#   kubelet: update on nodes/proxy (reached directly)" in out
    assert "#   kube-proxy: no rule" in out
    # The same output twice: names and order are stable, so a re-apply changes nothing.
    assert ctl("verbosity", "rbac")[1] == out


def test_rbac_names_the_user_and_refuses_an_unprintable_one(ctl: Ctl) -> None:
    code, out, _ = ctl("verbosity", "rbac", "--user", "system:clusterm@example.org")
    assert code == 0
    _, binding = documents(out)
    assert binding["subjects"][0]["name"] == "system:clusterm@example.org"
    code, out, err = ctl("verbosity", "rbac", "--user", "x\nkind: Secret")
    assert code == 2
    assert out == ""
    assert "printable" in err


class TestThroughTheApiserver:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {
            "verbosity_components": {
                "kubelet": {"via_apiserver": True},
                "kube-apiserver": {"port": 16443, "path": "/custom/flags/v"},
            },
            "verbosity_apiserver_node": "m1",
        }

    def test_components_show_the_relay_and_its_credentials(
        self, client: TestClient, as_role: Callable[[str], dict[str, str]]
    ) -> None:
        kubelet = by_name(client, as_role("viewer"))["kubelet"]
        assert kubelet["via_apiserver"] is True
        assert kubelet["apiserver_node"] == "m1"
        assert kubelet["url"] == (
            "https://{apiserver}:16443/api/v1/nodes/{node}/proxy/debug/flags/v"
        )
        assert kubelet["credentials_from"] == "kube-apiserver"

    def test_rbac_still_needs_nodes_proxy_and_each_control_plane_path(self, ctl: Ctl) -> None:
        code, out, err = ctl("verbosity", "rbac", "--user", "ops")
        assert code == 0, err
        role, binding = documents(out)
        assert role["rules"] == [
            {"nonResourceURLs": ["/custom/flags/v", "/debug/flags/v"], "verbs": ["put"]},
            {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["update"]},
        ]
        assert binding["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ops"}
        ]
        assert "#   kubelet: update on nodes/proxy (reached through the apiserver)" in out


def test_components_in_clusterctl(ctl: Ctl) -> None:
    code, out, _ = ctl("verbosity", "components")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["COMPONENT", *NAMES]
    code, out, _ = ctl("verbosity", "components", "--json")
    assert [c["name"] for c in json.loads(out)] == NAMES


def test_levels_as_text(
    admin: TestClient,
    as_role: Callable[[str], dict[str, str]],
    emulators: Callable[..., Emulator],
) -> None:
    emulator = emulators()
    register(admin, "w1", {"kubelet": emulator.add("w1", token=TOKEN).port})
    emulator.start()
    change = {"component": "kubelet", "nodes": ["w1"], "level": 5, "ttl": "15m"}
    assert admin.post("/verbosity", json=change).status_code == 200
    levels = admin.get("/verbosity").json()
    r = admin.get("/verbosity", params={"format": "text"}, headers=as_role("viewer"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    header, row = r.text.splitlines()
    assert header.split("  ")[:4] == ["NODE", "COMPONENT", "LEVEL", "BASELINE"]
    assert "REVERTS TO" in header
    assert "REVERTS AT" in header
    cells = row.split()
    assert cells[:5] == ["w1", "kubelet", "5", "2", "admin"]
    # The pending revert: back to 2, at the time the JSON gives, to the second.
    reverts_at = levels[0]["reverts_at"][:19].replace("T", " ")
    assert " ".join(cells[7:]) == f"2 {reverts_at} -"
    by_accept = admin.get("/verbosity", headers={"Accept": "text/plain"})
    assert by_accept.text == r.text
    assert admin.get("/verbosity", params={"format": "xml"}).status_code == 422
