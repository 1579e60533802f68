"""The HTTP client: where clusterctl finds the daemon and its token, and how refusals are told."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx_sse import EventSource

DEFAULT_URL = "http://127.0.0.1:9007"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ApiError(Exception):
    exit_code = 1


class Refused(ApiError):
    """The daemon answered with an error status: exit 1 with its message."""

    def __init__(self, status: int, error: str, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.body = status, error, message, body


class Unreachable(ApiError):
    exit_code = 3


def local_token_file() -> Path:
    # The daemon's default data dir (app.config.default_data_dir), repeated here so that
    # clusterctl does not import the daemon's settings stack on every run.
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


class Api:
    def __init__(self, url: str, token: str | None, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = http or httpx.Client(base_url=self.url, timeout=30.0)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, headers=self._headers, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(
                f"cannot reach clusterm at {self.url}: {exc}. Is the daemon running? "
                "Set --url or CLUSTERM_URL"
            ) from exc
        if response.status_code >= 400:
            raise _refusal(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean).json()

    @contextmanager
    def stream(
        self, path: str, *, last_event_id: str | None = None, **params: Any
    ) -> Iterator[EventSource]:
        """A Server-Sent Events stream; refusals and unreachability as for `request`."""
        headers = {**self._headers, "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            with self._http.stream("GET", path, headers=headers, params=clean) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _refusal(response)
                yield EventSource(response)
        except httpx.TransportError as exc:
            raise Unreachable(f"lost the stream from clusterm at {self.url}: {exc}") from exc

    def send(self, method: str, path: str, body: Any = None) -> Any:
        response = self.request(method, path, json=body)
        return response.json() if response.content else None


def _refusal(response: httpx.Response) -> Refused:
    try:
        body = response.json()
        error = str(body.get("error", "Error"))
        message = str(body.get("message", response.text))
    except (ValueError, AttributeError):
        body, error, message = None, "Error", response.text.strip() or response.reason_phrase
    if response.status_code == 401:
        message += " (give a token with --token or CLUSTERM_TOKEN)"
    return Refused(response.status_code, error, message, body)
