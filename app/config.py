"""Settings: one object, validated at start-up.

Precedence, highest first: command-line flags, `CLUSTERM_*` environment variables, the config file
(TOML or YAML, from `--config` or `CLUSTERM_CONFIG`), then the defaults below.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.nodes.vocabulary import HostGroup
from app.operator_vars import OperatorVars

try:
    VERSION = importlib.metadata.version("clusterm")
except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
    VERSION = "0.0.0+unknown"

# The original clusterm's port; users' scripts expect it (see docs/contracts.md#contiv-clusterm).
DEFAULT_PORT = 9007


# --- verbosity_components ------------------------------------------------------------------------
# The models of nested settings live here, with the settings: the core imports no domain (only a
# domain's vocabulary, the enums every layer shares, which import nothing themselves).

# What klog accepts since Kubernetes 1.27 (see docs/contracts.md#flags-endpoint).
MAX_LEVEL = 2147483647

ComponentName = Literal[
    "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubelet", "kube-proxy"
]
_PATH_RE = re.compile(r"^(/[A-Za-z0-9_.~-]+)+$")


class ComponentConfig(BaseModel):
    """Overrides of one component's defaults (`verbosity_components` in the settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int | None = Field(default=None, ge=1, le=65535)
    scheme: Literal["http", "https"] | None = None
    path: str | None = Field(default=None, description="default /debug/flags/v")
    token_file: Path | None = Field(default=None, description="file holding a bearer token")
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle that signs its cert")
    insecure_skip_tls_verify: bool = Field(
        default=False, description="explicit opt-in: do not check the component's certificate"
    )
    baseline_level: int | None = Field(default=None, ge=0, le=MAX_LEVEL)
    host_groups: tuple[HostGroup, ...] | None = Field(
        default=None, description='the groups "all" selects; control plane default: master'
    )
    via_apiserver: bool = Field(
        default=False,
        description="kubelet only: go through the apiserver's nodes/{node}/proxy path",
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str | None) -> str | None:
        if path is not None and (not _PATH_RE.fullmatch(path) or "/../" in f"{path}/"):
            raise ValueError("must be an absolute URL path such as /debug/flags/v")
        return path

    @model_validator(mode="after")
    def _cert_and_key(self) -> ComponentConfig:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together: give both")
        return self


def check_components(value: dict[str, ComponentConfig]) -> dict[str, ComponentConfig]:
    for name, config in value.items():
        if config.via_apiserver and name != "kubelet":
            raise ValueError(f"{name}: via_apiserver is only for the kubelet")
    return value


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
    # The recent log kept in memory for GET /debug/log and the support bundle.
    own_log_ring_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    # The support bundle's size before compression, at most (GET /support/bundle).
    support_bundle_max_bytes: int = Field(
        default=50 * 1000 * 1000, ge=16 * 1024, le=10 * 1000 * 1000 * 1000
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0, le=600_000)
    # HTTPS with uvicorn's own TLS when both are set; clusterctl checks it with --ca-file.
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate (chain)")
    tls_key_file: Path | None = Field(default=None, description="PEM private key")
    # Live streams (timeline and job log) held open at once; beyond it a 503 with Retry-After.
    max_stream_followers: int = Field(default=100, ge=1, le=10_000)
    # GET /metrics is on the API's port with a viewer token; with metrics_port set, also on
    # metrics_host:metrics_port without a token (only /metrics), for a scraper that holds none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    admin_token_file: Path = Field(
        default=Path("admin.token"),  # replaced by <data dir>/admin.token (see below)
        description="where the first start writes the first admin token; default: admin.token "
        "in the data dir (replicas: a path they share, as only the first replica writes it)",
    )

    # replicas (PostgreSQL only; see docs/replicas.md)
    replica_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="this replica's name, unique among the replicas; default: <hostname>:<port>",
    )
    advertise_url: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^https?://[^\s/?#]+/?$",
        description="the URL other replicas and clients reach this replica at; default: "
        "http(s)://<host, or the hostname when listening on every address>:<port>",
    )
    # A leader renews its lease every quarter of this and steps down (killing its playbook) when
    # it could not for half of it; a dead leader is replaced after at most this long.
    lease_ttl_s: float = Field(default=4.0, ge=2.0, le=120.0)

    # timeline
    # A month covers the usual gap between a failure and the ticket that asks about it, and the
    # 300 per node Ironic keeps is enough to see a node's last commission/decommission cycles.
    # The total cap wins over the day floor: it bounds the disk (1,000,000 events is a few hundred
    # MB of SQLite, measured in docs/benchmarks.md) even when a runaway client floods the timeline.
    timeline_keep_days: int = Field(default=30, ge=0, le=36_500)
    timeline_max_events: int = Field(default=1_000_000, ge=1_000)
    timeline_max_events_per_node: int = Field(default=300, ge=10)
    # The audit trail (tokens, refusals, jobs accepted, verbosity) is capped on its own: the
    # general cap never removes an audit event and this one never removes anything else.
    timeline_max_audit_events: int = Field(default=200_000, ge=1_000)
    timeline_purge_interval_s: float = Field(default=600.0, gt=0, le=86_400)
    timeline_purge_batch: int = Field(default=1_000, ge=1, le=100_000)
    # Proxies commonly cut an idle connection after 60 s; a comment every 15 s keeps streams open.
    timeline_stream_ping_s: float = Field(default=15.0, gt=0, le=300)
    # How soon a follower sees events written by another process (same-process ones wake it now).
    timeline_stream_poll_s: float = Field(default=1.0, gt=0, le=60)

    # jobs
    playbook_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "ansible",
        description="where the playbooks below are looked up (relative names); default: ansible/",
    )
    commission_playbook: str = "commission.yml"
    decommission_playbook: str = "decommission.yml"
    update_playbook: str = "update.yml"
    cleanup_playbook: str = "cleanup.yml"
    discover_playbook: str = "discover.yml"
    maintenance_playbook: str = "maintenance.yml"
    ssh_private_key_file: Path | None = None
    ssh_host_key_policy: Literal["accept-new", "strict", "off"] = Field(
        default="accept-new",
        description="accept-new: trust a host's key on first contact and remember it in "
        "known_hosts in the data dir; strict: only keys already there; off: no checking",
    )
    extra_vars: dict[str, Any] = Field(
        default_factory=dict, description="extra vars of every job; globals and requests win"
    )
    operator_extra_vars: OperatorVars = Field(
        default_factory=dict,
        description="extra vars an operator may send besides the timing and retry knobs, each "
        'with its type: {"my_batch": {"type": "int", "min": 1, "max": 50}}',
    )
    ansible_env: dict[str, str] = Field(
        default_factory=dict,
        description="environment of ansible-playbook (ANSIBLE_* settings, proxies); clusterm's "
        "own SSH settings above win",
    )
    job_timeout_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    job_log_cap_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)
    # The newest jobs whose files (data dir) and logs (database) are kept; older jobs keep their
    # row and timeline, not their log.
    job_dirs_kept: int = Field(default=20, ge=2, le=10_000)
    # Every task's result per host, stored with the job (GET /jobs/{id}/hosts); off: only the
    # failed and unreachable tasks (each host's counts and its failure's reason stay).
    job_task_results: bool = True
    # The CPU priority of a job's processes (ansible-runner, ansible-playbook, its forks, the
    # commands of local tasks): while a big job keeps every core busy, the API still answers at
    # once. docs/jobs.md#priority.
    job_priority: Literal["idle", "low", "normal"] = Field(
        default="idle",
        description="idle: a job gets the CPU the daemon does not use (SCHED_IDLE); low: "
        "niceness 10; normal: the daemon's own priority",
    )

    # verbosity
    verbosity_components: Annotated[
        dict[ComponentName, ComponentConfig], AfterValidator(check_components)
    ] = Field(
        default_factory=dict,
        description="per component: port, scheme, path, token_file, client_cert_file, "
        "client_key_file, ca_file, insecure_skip_tls_verify, baseline_level, host_groups, "
        "via_apiserver (kubelet)",
    )
    verbosity_apiserver_node: str | None = Field(
        default=None,
        description="node whose apiserver relays kubelet calls (via_apiserver); it must be a "
        "master in the cluster; default: the first master (the oldest commissioned)",
    )
    verbosity_concurrency: int = Field(default=100, ge=1, le=2000)
    verbosity_timeout_s: float = Field(default=5.0, gt=0, le=120)
    verbosity_default_ttl_s: int = Field(
        default=900, ge=0, le=7 * 24 * 3600, description="ttl of a change that gives none; 0: none"
    )
    verbosity_max_ttl_s: int = Field(default=24 * 3600, ge=1, le=7 * 24 * 3600)
    verbosity_revert_retry_s: float = Field(default=10.0, gt=0, le=3600)
    verbosity_revert_max_attempts: int = Field(default=10, ge=1, le=1000)

    # drift
    # Five minutes: a vanished node is noticed well before anyone schedules onto it, and a master
    # is asked a dozen times an hour, which costs it nothing. 0 turns the watch off.
    drift_interval_s: float = Field(default=300.0, ge=0, le=86_400)
    drift_remediate: bool = Field(
        default=False,
        description="queue a re-join (update job) for a node missing from the cluster",
    )
    drift_timeout_s: int = Field(default=120, ge=5, le=3600)
    cluster_nodes_playbook: str = "cluster_nodes.yml"

    @model_validator(mode="before")
    @classmethod
    def _token_in_data_dir(cls, data: Any) -> Any:
        # The default depends on another setting: filled in before validation, where every
        # source (flags, environment, file) has been merged.
        if isinstance(data, dict) and not data.get("admin_token_file"):
            data_dir = Path(data.get("data_dir") or default_data_dir())
            data = {**data, "admin_token_file": data_dir / "admin.token"}
        return data

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        return self

    @model_validator(mode="after")
    def _metrics_port_apart(self) -> Settings:
        if self.metrics_port == self.port:
            raise ValueError(
                f"metrics_port {self.metrics_port} is the API's port: pick another one (the "
                "API serves /metrics with a viewer token already)"
            )
        return self

    @property
    def known_hosts_file(self) -> Path:
        return self.data_dir / "known_hosts"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'clusterm.db'}"

    @property
    def effective_replica_id(self) -> str:
        return self.replica_id or f"{socket.gethostname()[:50]}:{self.port}"

    @property
    def effective_advertise_url(self) -> str:
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        scheme = "https" if self.tls_cert_file else "http"
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


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
    # Field by field, not through a dump: nested settings (verbosity_components,
    # operator_extra_vars) stay validated models instead of turning back into plain dicts.
    return Settings.model_construct(
        **{name: getattr(loaded, name) for name in Settings.model_fields}
    )
