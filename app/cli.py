"""`clusterm`: run the daemon and its admin commands (database, tokens)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from app.config import DEFAULT_PORT, Settings, SettingsError, load_settings

cli = typer.Typer(
    help="clusterm: the cluster manager daemon and its admin commands.",
    no_args_is_help=True,
    add_completion=True,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
token_cli = typer.Typer(help="API tokens.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(token_cli, name="token")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data directory [env CLUSTERM_DATA_DIR]", show_default=False),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML or YAML settings file [env CLUSTERM_CONFIG]"),
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"clusterm: {message}", err=True)
    raise typer.Exit(code)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except SettingsError as exc:
        _fail(str(exc), 2)


def _cli_actor() -> str:
    """Who ran this command, for the timeline: the OS user, marked as a local admin command."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "clusterm-cli"
    return f"{user}@clusterm-cli"


def _migrated_db(settings: Settings) -> Any:
    from app import db as store
    from app.files import prepare_data_dir
    from app.timeline import service as timeline

    prepare_data_dir(settings.data_dir, settings.effective_database_url)
    _upgrade(settings.effective_database_url)
    # The timeline's listeners: the commands record events (a token created or revoked).
    return timeline.attach(store.Database(settings.effective_database_url))


def _upgrade(url: str) -> None:
    """Migrate under the lock replicas migrate under; refuse a database a newer clusterm
    migrated (it would fail half-way through, or worse, downgrade nothing and say done)."""
    from app import db as store

    with store.migration_lock(url):
        engine = store.create_db_engine(url)
        try:
            newer = store.unknown_revisions(engine)
        finally:
            engine.dispose()
        if newer:
            _fail(
                f"the database is at migration {','.join(sorted(newer))}, which this clusterm "
                "does not know: a newer clusterm migrated it; run this command with that version"
            )
        store.upgrade(url)


def _check_single_process(settings: Settings) -> None:
    """On SQLite, refuse to start beside another daemon before anything else happens."""
    from app import files

    if not settings.is_sqlite:
        return
    owner = {"pid": os.getpid(), "serving": settings.effective_advertise_url}
    try:
        # Held for the process's life; the runtime takes the same lock (shared within a process).
        files.lock_sqlite(settings.effective_database_url, owner=owner)
    except files.AlreadyRunning as exc:
        _fail(str(exc))


def _check_tls(settings: Settings) -> None:
    """A certificate and key that cannot be loaded stop the start-up with the settings' names."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_cert_file, settings.tls_key_file
        )
    except (OSError, ssl.SSLError) as exc:
        _fail(
            f"invalid setting tls_cert_file/tls_key_file (CLUSTERM_TLS_CERT_FILE, "
            f"CLUSTERM_TLS_KEY_FILE): cannot load {settings.tls_cert_file} with "
            f"{settings.tls_key_file}: {exc}",
            2,
        )


def _check_metrics_port(settings: Settings) -> None:
    """A metrics port that cannot be had stops the start-up with the settings' names, before
    the database is touched."""
    from app.metrics.port import MetricsPortError, check_metrics_port

    try:
        check_metrics_port(settings)
    except MetricsPortError as exc:
        _fail(str(exc))


@cli.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to listen on [default 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help=f"port [default {DEFAULT_PORT}]")] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    demo: Annotated[
        bool,
        typer.Option(
            help="a sandbox: register 3 simulated nodes on this machine and commission them "
            "(data dir default: <data dir>/demo)"
        ),
    ] = False,
) -> None:
    """Run the daemon: migrate the database, then serve the API until SIGTERM or SIGINT."""
    if demo and data_dir is None and not os.environ.get("CLUSTERM_DATA_DIR"):
        # Keep the demo's nodes out of a real inventory.
        from app.config import default_data_dir

        data_dir = default_data_dir() / "demo"
    settings = _settings(config, host=host, port=port, data_dir=data_dir)
    _check_tls(settings)
    _check_metrics_port(settings)
    # Made before the lock: the lock file lives beside the database, in the data dir.
    from app.files import prepare_data_dir

    prepare_data_dir(settings.data_dir, settings.effective_database_url)
    _check_single_process(settings)

    import uvicorn

    from app.logs import configure_logging
    from app.main import create_app

    configure_logging(fmt=settings.log_format, level=settings.log_level)
    app = create_app(settings, demo=demo)
    # The modules, routes and schemas just built live as long as the daemon: out of the
    # collector's sight, a request that allocates much (5,000 nodes in one POST) no longer pays
    # for walking them at every full collection (about a third of that POST's time, measured).
    gc.collect()
    gc.freeze()
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, finishes requests, runs the lifespan's
    # shutdown, then returns here.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        # HTTPS when both are set (uvicorn's own TLS); plain HTTP when neither is.
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )


@db_cli.command("upgrade")
def db_upgrade(data_dir: DataDirOpt = None, config: ConfigOpt = None) -> None:
    """Apply every pending migration."""
    from app import db as store
    from app.files import prepare_data_dir

    settings = _settings(config, data_dir=data_dir)
    prepare_data_dir(settings.data_dir, settings.effective_database_url)
    _upgrade(settings.effective_database_url)
    typer.echo(f"database at migration {','.join(sorted(store.head_revisions()))}", err=True)


@token_cli.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="viewer, operator or admin")],
    name: Annotated[str, typer.Option(help="who uses it; shown as the actor on the timeline")],
    ttl: Annotated[
        str | None,
        typer.Option(
            help="lifetime, e.g. 90s, 15m, 12h, 30d (at most 3650d); default: never expires",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token and print it (only it) on stdout. It is never shown again."""
    from app.auth import service as auth
    from app.db import utcnow
    from app.errors import ClustermError, Invalid
    from app.timeline import service as timeline
    from app.timeline.vocabulary import Result, Severity

    expires_at = None
    if ttl is not None:
        try:
            expires_at = utcnow() + auth.parse_ttl(ttl)
        except Invalid as exc:
            raise typer.BadParameter(exc.message, param_hint="--ttl") from None
    expiry = expires_at.isoformat(timespec="seconds") if expires_at else None
    db = _migrated_db(_settings(config, data_dir=data_dir))
    try:
        with db.write() as session:
            token = auth.create_token(session=session, name=name, role=role, expires_at=expires_at)
            timeline.record_event(
                session=session,
                action="token",
                reason="TokenCreated",
                result=Result.SUCCEEDED,
                severity=Severity.AUDIT,
                actor=_cli_actor(),
                note=f"token {name!r} created with role {role}, "
                + (f"expires at {expiry}" if expiry else "never expires"),
                details={"token": name, "role": role, "expires_at": expiry},
            )
    except ClustermError as exc:
        _fail(exc.message)
    typer.echo(token)


@token_cli.command("list")
def token_list(data_dir: DataDirOpt = None, config: ConfigOpt = None) -> None:
    """List tokens by name, role and expiry (never the tokens themselves)."""
    from app.auth import service as auth
    from app.db import utcnow

    db = _migrated_db(_settings(config, data_dir=data_dir))
    with db.read() as session:
        rows = auth.list_tokens(session=session)
    now = utcnow()
    typer.echo(f"{'NAME':<24} {'ROLE':<9} {'CREATED':<25} {'LAST USED':<25} EXPIRES")
    for row in rows:
        last = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "-"
        created = row.created_at.isoformat(timespec="seconds")
        expires = row.expires_at.isoformat(timespec="seconds") if row.expires_at else "never"
        if auth.expired(row.expires_at, now):
            expires = f"expired {expires}"
        typer.echo(f"{row.name:<24} {row.role:<9} {created:<25} {last:<25} {expires}")


@token_cli.command("revoke")
def token_revoke(name: str, data_dir: DataDirOpt = None, config: ConfigOpt = None) -> None:
    """Revoke a token: requests with it are refused from now on."""
    from app.auth import service as auth
    from app.errors import ClustermError
    from app.timeline import service as timeline
    from app.timeline.vocabulary import Result, Severity

    db = _migrated_db(_settings(config, data_dir=data_dir))
    try:
        with db.write() as session:
            row = auth.revoke_token(session=session, name=name)
            timeline.record_event(
                session=session,
                action="token",
                reason="TokenRevoked",
                result=Result.SUCCEEDED,
                severity=Severity.AUDIT,
                actor=_cli_actor(),
                note=f"token {name!r} (role {row.role}) revoked",
                details={"token": name, "role": row.role},
            )
    except ClustermError as exc:
        _fail(exc.message)
    typer.echo(f"revoked token {name!r}", err=True)


def main() -> None:
    # Every file clusterm or its commands create (the database, tokens, job files) is private.
    os.umask(0o077)
    sys.exit(cli())
