"""Where clusterctl finds the daemon: its URLs (one per replica) and the token for each."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import typer

DEFAULT_URL = "http://127.0.0.1:9007"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def local_token_file() -> Path:
    # The daemon's admin_token_file, and its default in the data dir (app.config), repeated
    # here so that clusterctl does not import the daemon's settings stack on every run.
    token_file = os.environ.get("CLUSTERM_ADMIN_TOKEN_FILE")
    if token_file:
        return Path(token_file)
    data_dir = os.environ.get("CLUSTERM_DATA_DIR")
    if data_dir:
        return Path(data_dir) / "admin.token"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "clusterm" / "admin.token"


def resolve_token(url: str, token: str | None) -> str | None:
    """--token, else CLUSTERM_TOKEN, else the daemon's admin token file when it is local."""
    if token:
        return token
    if os.environ.get("CLUSTERM_TOKEN"):
        return os.environ["CLUSTERM_TOKEN"]
    if urlsplit(url).hostname in LOCAL_HOSTS:
        try:
            return local_token_file().read_text().strip() or None
        except OSError:
            return None
    return None


def parse_urls(values: Sequence[str]) -> list[str]:
    """The URLs of --url (repeatable) and CLUSTERM_URL (separated by commas), each once, in order;
    a usage error for one that is not an http(s) URL with a host."""
    urls: list[str] = []
    for value in values:
        for part in value.split(","):
            url = part.strip().rstrip("/")
            if not url:
                continue
            if not _is_daemon_url(url):
                raise typer.BadParameter(
                    f"{url!r} is not a daemon's URL; give one such as {DEFAULT_URL} or "
                    "https://clusterm.example:9007",
                    param_hint="--url (CLUSTERM_URL)",
                )
            if url not in urls:
                urls.append(url)
    if not urls:
        raise typer.BadParameter(
            f"empty; give the daemon's URL, e.g. {DEFAULT_URL}", param_hint="--url (CLUSTERM_URL)"
        )
    return urls


def _is_daemon_url(url: str) -> bool:
    parts = urlsplit(url)
    try:
        _ = parts.port  # a port that is not a number raises here, not in the first request
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
