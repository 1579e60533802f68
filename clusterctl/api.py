"""The HTTP client: where clusterctl finds the daemon and its token, and how refusals are told."""

from __future__ import annotations

import os
import ssl
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


class BadCaFile(ApiError):
    """--ca-file cannot be used: a usage error."""

    exit_code = 2


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


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """How the daemon's certificate is checked: against `ca_file`, else the system's CAs."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadCaFile(
            f"--ca-file (CLUSTERM_CA_FILE) {ca_file}: cannot be used: {reason}; "
            "give the PEM file of the CA that signed the daemon's certificate"
        ) from None


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _unreachable(url: str, exc: httpx.TransportError) -> Unreachable:
    untrusted = _cause(exc, ssl.SSLCertVerificationError)
    if untrusted is not None:
        reason = getattr(untrusted, "verify_message", None) or str(untrusted)
        return Unreachable(
            f"cannot trust clusterm at {url}: its certificate failed verification ({reason}); "
            "give the CA that signed it with --ca-file or CLUSTERM_CA_FILE"
        )
    hint = "Is the daemon running? Set --url or CLUSTERM_URL"
    scheme = urlsplit(url).scheme
    # A TLS port answers plain HTTP by dropping the connection; a plain one answers a TLS
    # handshake with something that is not TLS.
    dropped = isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError)
    if dropped and scheme == "http":
        hint = "If the daemon serves HTTPS (tls_cert_file is set), use an https:// URL"
    elif scheme == "https" and _cause(exc, ssl.SSLError) is not None:
        hint = "If the daemon serves plain HTTP (no tls_cert_file), use an http:// URL"
    return Unreachable(f"cannot reach clusterm at {url}: {exc}. {hint}")


class Api:
    def __init__(
        self,
        url: str,
        token: str | None,
        http: httpx.Client | None = None,
        *,
        ca_file: Path | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._owned = http is None
        if http is None:
            # The context only when it is needed: loading the system's CAs costs a plain-HTTP
            # command against a local daemon time for nothing.
            https = urlsplit(self.url).scheme == "https"
            verify = tls_context(ca_file) if https or ca_file else True
            http = httpx.Client(base_url=self.url, timeout=30.0, verify=verify)
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def close(self) -> None:
        """Close the connections of a client made here; an injected one is its owner's."""
        if self._owned:
            self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, headers=self._headers, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc
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
        except httpx.ConnectError as exc:
            raise _unreachable(self.url, exc) from exc
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
