"""Verbosity fixtures: a CA and credentials made per session, emulated components on loopback,
and settings that point clusterm's components at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import trustme
from fastapi.testclient import TestClient

from app.config import Settings, load_settings
from app.db import Database
from app.nodes.models import Node
from app.runtime import runtime_of
from tests.conftest import node_body
from tests.verbosity.emulator import Emulator

TOKEN = "s3cr3t-kubelet-token-0123456789abcdef"
HTTPS = ("kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubelet")


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    ca_file: Path
    other_ca: trustme.CA  # signs certificates clusterm does not trust
    token_file: Path
    directory: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    token_file = directory / "token"
    token_file.write_text(TOKEN + "\n")
    return Pki(ca, ca_file, trustme.CA(), token_file, directory)


def component_settings(pki: Pki, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        name: {"ca_file": pki.ca_file, "token_file": pki.token_file} for name in HTTPS
    }
    for name, values in extra.items():
        out.setdefault(name.replace("_", "-"), {}).update(values)
    return out


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Tests override this to add settings (the fixture below applies them)."""
    return {}


@pytest.fixture
def settings(data_dir: Path, db_url: str, pki: Pki, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "verbosity_components": component_settings(pki),
        "verbosity_timeout_s": 2.0,
        "verbosity_revert_retry_s": 0.5,
    }
    overrides = dict(settings_overrides)
    for name, extra in overrides.pop("verbosity_components", {}).items():
        values["verbosity_components"].setdefault(name, {}).update(extra)
    values.update(overrides)
    return load_settings(data_dir=data_dir, database_url=db_url, **values)


@pytest.fixture(autouse=True)
def emulators(pki: Pki) -> Iterator[Callable[..., Emulator]]:
    """Make emulators (TLS signed by the trusted CA unless told otherwise); all stop at the end.

    Autouse so it is set up before the app and torn down after it: clusterm closes its
    connections first, and the emulator's TLS connections then close cleanly."""
    made: list[Emulator] = []

    def make(*, ca: trustme.CA | str | None = "trusted") -> Emulator:
        chosen = pki.ca if ca == "trusted" else ca
        assert not isinstance(chosen, str)
        emulator = Emulator(ca=chosen, cert_dir=pki.directory)
        made.append(emulator)
        return emulator

    yield make
    for emulator in made:
        emulator.stop()


def register(
    admin: TestClient,
    name: str,
    ports: dict[str, int] | None = None,
    *,
    group: str = "worker",
    state: str = "commissioned",
    **extra: Any,
) -> None:
    """Register a node on 127.0.0.1 whose components listen on `ports` (node vars), in `state`
    (commissioned unless told: a registered node runs no component clusterm may reach)."""
    variables = {"clusterm_verbosity": {c: {"port": p} for c, p in (ports or {}).items()}}
    body = node_body(name, host_group=group, **{"vars": variables, **extra})
    r = admin.post("/nodes", json=body)
    assert r.status_code == 201, r.text
    set_state(admin, state, name)


def set_state(client: TestClient, state: str, *names: str) -> None:
    """Put nodes in a lifecycle state directly (the jobs that move them need real hosts)."""
    db: Database = runtime_of(client.app).db
    with db.write() as session:
        session.execute(sa.update(Node).where(Node.name.in_(names)).values(state=state))


def put_level(client: TestClient, path: str, body: bytes, **params: str) -> Any:
    return client.put(path, content=body, params=params)
