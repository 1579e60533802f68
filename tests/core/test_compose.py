"""docker-compose.yml cannot run here (no Docker engine); check it against the real settings."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import cli
from app.config import DEFAULT_PORT, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


REPLICAS = ("clusterm-a", "clusterm-b")


def serve_options(service: dict[str, Any]) -> dict[str, str]:
    """The `clusterm serve` options of a service's command, each a real option of serve."""
    command = service["command"]
    assert command[:2] == ["clusterm", "serve"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    serve = next(
        c for c in cli.registered_commands if c.callback and c.callback.__name__ == "serve"
    )
    assert serve.callback is not None
    known = {"--" + name.replace("_", "-") for name in serve.callback.__annotations__}
    assert set(options) <= known, set(options) - known
    return options


def test_clusterm_service_runs_serve_on_the_default_port() -> None:
    service = compose()["services"]["clusterm"]
    assert serve_options(service)["--port"] == str(DEFAULT_PORT)
    assert service["ports"] == [f"{DEFAULT_PORT}:{DEFAULT_PORT}"]


@pytest.mark.parametrize("name", ["clusterm", *REPLICAS])
def test_environment_names_are_real_settings(name: str) -> None:
    service = compose()["services"][name]
    for env in service["environment"]:
        assert env.startswith("CLUSTERM_"), env
        field = env.removeprefix("CLUSTERM_").lower()
        assert field in Settings.model_fields, f"{env} is not a setting"


def test_data_dir_is_on_a_volume() -> None:
    data = compose()
    service = data["services"]["clusterm"]
    data_dir = service["environment"]["CLUSTERM_DATA_DIR"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    assert mounts[data_dir] in data["volumes"]


def test_postgres_is_behind_a_profile_and_matches_the_url_in_the_comment() -> None:
    data = compose()
    pg = data["services"]["postgres"]
    assert pg["profiles"] == ["postgres", "ha"]
    text = (ROOT / "docker-compose.yml").read_text()
    url = re.search(r"postgresql\+psycopg://(\w+):(\w+)@postgres:5432/(\w+)", text)
    assert url is not None
    env = pg["environment"]
    assert url.groups() == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])


def test_dockerfile_serves_the_same_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (.+)$", dockerfile, re.M)
    assert cmd is not None
    assert shlex.split(cmd.group(1).replace('"', "").strip("[]").replace(",", " ")) == [
        "clusterm",
        "serve",
    ]
    for name in re.findall(r"(CLUSTERM_\w+)=", dockerfile):
        assert name.removeprefix("CLUSTERM_").lower() in Settings.model_fields, name


def enabled(services: dict[str, Any], profiles: set[str]) -> list[str]:
    """The services `docker compose up` starts with these profiles active."""
    return [n for n, s in services.items() if "profiles" not in s or profiles & set(s["profiles"])]


def test_the_default_up_is_the_single_sqlite_daemon() -> None:
    """A bare `docker compose up` takes its profiles from .env (COMPOSE_PROFILES): only clusterm,
    on its data dir's SQLite file unless CLUSTERM_DATABASE_URL is given."""
    services = compose()["services"]
    env = dict(
        line.split("=", 1)
        for line in (ROOT / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    default = set(env["COMPOSE_PROFILES"].split(","))
    assert enabled(services, default) == ["clusterm"]
    assert enabled(services, {"postgres"}) == ["clusterm", "postgres"]
    # A --profile replaces COMPOSE_PROFILES: the replicas never start beside the single daemon.
    assert enabled(services, {"ha"}) == ["postgres", *REPLICAS]
    assert services["clusterm"]["environment"]["CLUSTERM_DATABASE_URL"] == (
        "${CLUSTERM_DATABASE_URL:-}"
    )


def test_ha_replicas_share_one_database_and_the_first_token() -> None:
    data = compose()
    services = data["services"]
    replicas = [services[name] for name in REPLICAS]
    for replica in replicas:
        assert replica["profiles"] == ["ha"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    envs = [r["environment"] for r in replicas]
    pg = services["postgres"]["environment"]
    url = (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert [e["CLUSTERM_DATABASE_URL"] for e in envs] == [url, url]
    # The first admin token: one file, on a volume every replica mounts.
    token_files = {e["CLUSTERM_ADMIN_TOKEN_FILE"] for e in envs}
    assert len(token_files) == 1
    token_dir = str(Path(token_files.pop()).parent)
    shared = [mounts(r).get(token_dir) for r in replicas]
    assert shared[0] is not None
    assert shared[0] == shared[1]
    assert shared[0] in data["volumes"]
    # The playbooks and the SSH key: the same files on every replica, read-only.
    for setting in ("CLUSTERM_PLAYBOOK_DIR", "CLUSTERM_SSH_PRIVATE_KEY_FILE"):
        paths = {e[setting] for e in envs}
        assert len(paths) == 1, setting
        path = Path(paths.pop())
        where = [m for r in replicas for m in r["volumes"] if _covers(m, path)]
        assert len(where) == 2, setting
        assert where[0] == where[1]
        assert where[0].endswith(":ro"), where[0]


def test_ha_replicas_differ_in_port_address_name_and_data_dir() -> None:
    data = compose()
    services = data["services"]
    replicas = [services[name] for name in REPLICAS]
    envs = [r["environment"] for r in replicas]
    host_ports = [int(r["ports"][0].split(":")[0]) for r in replicas]
    assert host_ports == [DEFAULT_PORT, DEFAULT_PORT + 1]
    for name, replica, env, host_port in zip(REPLICAS, replicas, envs, host_ports, strict=True):
        port = serve_options(replica)["--port"]
        assert replica["ports"] == [f"{host_port}:{port}"]
        assert env["CLUSTERM_REPLICA_ID"] == name
        assert env["CLUSTERM_ADVERTISE_URL"] == f"http://{name}:{port}"
        # Values the settings accept (a bad one stops the start-up).
        load_settings(advertise_url=env["CLUSTERM_ADVERTISE_URL"], replica_id=name)
        # The health check asks the port the replica listens on.
        assert env.get("CLUSTERM_PORT", str(DEFAULT_PORT)) == port
    assert len({e["CLUSTERM_ADVERTISE_URL"] for e in envs}) == 2
    data_volumes = [mounts(r)[e["CLUSTERM_DATA_DIR"]] for r, e in zip(replicas, envs, strict=True)]
    assert len(set(data_volumes)) == 2
    assert set(data_volumes) <= set(data["volumes"])
    assert data_volumes[0] != mounts(services["clusterm"])["/var/lib/clusterm"]


def test_the_ha_command_in_the_comment_is_the_profile_alone() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "#   docker compose --profile ha up\n" in text


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> what is mounted there (a volume name or a host path)."""
    out = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


def _covers(volume: str, path: Path) -> bool:
    target = Path(volume.split(":")[1])
    return path == target or target in path.parents
