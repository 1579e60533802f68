"""docker-compose.yml cannot run here (no Docker engine); check it against the real settings."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from app.cli import cli
from app.config import DEFAULT_PORT, Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_clusterm_service_runs_serve_on_the_default_port() -> None:
    service = compose()["services"]["clusterm"]
    command = service["command"]
    assert command[:2] == ["clusterm", "serve"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    serve = next(
        c for c in cli.registered_commands if c.callback and c.callback.__name__ == "serve"
    )
    assert serve.callback is not None
    known = {"--" + name.replace("_", "-") for name in serve.callback.__annotations__}
    assert set(options) <= known, set(options) - known
    assert options["--port"] == str(DEFAULT_PORT)
    assert service["ports"] == [f"{DEFAULT_PORT}:{DEFAULT_PORT}"]


def test_environment_names_are_real_settings() -> None:
    service = compose()["services"]["clusterm"]
    for name in service["environment"]:
        assert name.startswith("CLUSTERM_"), name
        field = name.removeprefix("CLUSTERM_").lower()
        assert field in Settings.model_fields, f"{name} is not a setting"


def test_data_dir_is_on_a_volume() -> None:
    data = compose()
    service = data["services"]["clusterm"]
    data_dir = service["environment"]["CLUSTERM_DATA_DIR"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    assert mounts[data_dir] in data["volumes"]


def test_postgres_is_behind_a_profile_and_matches_the_url_in_the_comment() -> None:
    data = compose()
    pg = data["services"]["postgres"]
    assert pg["profiles"] == ["postgres"]
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
