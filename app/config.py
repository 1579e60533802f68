"""Settings: one object, validated at start-up.

Precedence, highest first: command-line flags, `CLUSTERM_*` environment variables, the config file
(TOML or YAML, from `--config` or `CLUSTERM_CONFIG`), then the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_PORT = 9007  # the original clusterm's port; users' scripts expect it


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/clusterm`, else `~/.local/share/clusterm`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "clusterm"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLUSTERM_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: the SQLite file clusterm.db in the data dir",
    )
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0, le=600_000)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'clusterm.db'}"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin.token"


class SettingsError(Exception):
    """The settings cannot be used; the message names the bad setting and why."""


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise SettingsError(f"config file {path} must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a table of settings")
    return data


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(settings)"
        env = f"CLUSTERM_{field.upper()}"
        lines.append(f"invalid setting {field} ({env} or {source}): {err['msg']}")
    return "\n".join(lines)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise SettingsError with a readable message when any is bad."""
    config_file = config_file or os.environ.get("CLUSTERM_CONFIG") or None
    file_values = _read_config_file(Path(config_file)) if config_file else {}
    overrides = {k: v for k, v in overrides.items() if v is not None}

    class _FileSettings(Settings):
        # The file's values rank below the environment: a subclass is pydantic-settings' way of
        # adding a source whose location is only known at run time.
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, InitSettingsSource(settings_cls, file_values))

    try:
        loaded = _FileSettings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, str(config_file or "flag"))) from exc
    return Settings.model_construct(**loaded.model_dump())
