"""The HTTP client: requests to the daemon (one URL, or one per replica), and how refusals and
unreachable daemons are told."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx_sse import EventSource

# What may be sent again to another replica once it has been sent: it changes nothing.
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CONNECT_TIMEOUT_S = 5.0
# Errors raised before a byte of the request left: a TLS handshake that failed is a ConnectError.
NEVER_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


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


def _reason(exc: httpx.TransportError) -> str:
    """One URL's failure in a few words, for the list of every URL tried."""
    untrusted = _cause(exc, ssl.SSLCertVerificationError)
    if untrusted is not None:
        reason = getattr(untrusted, "verify_message", None) or str(untrusted)
        return f"its certificate failed verification ({reason})"
    return str(exc) or type(exc).__name__


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
    """The daemon at one URL or more (replicas), tried in turn; see docs/replicas.md#clients.

    A URL that cannot be reached or answers 503 passes the request to the next one; the first
    other answer is the daemon's, and its URL is tried first by the next requests. A request that
    is not safe to repeat (POST, PUT, DELETE) moves on only when it never left: the connection
    could not be made. Once sent, its fate is the daemon's to tell, never guessed.
    """

    def __init__(
        self,
        urls: Sequence[str],
        tokens: Mapping[str, str | None],
        http: httpx.Client | Mapping[str, httpx.Client] | None = None,
        *,
        ca_file: Path | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one URL")
        self.urls = [url.rstrip("/") for url in urls]
        self._headers = [_auth(tokens.get(url)) for url in urls]
        self._injected = http
        # Built once, before any request, so that a bad --ca-file is a usage error at once. The
        # context only when it is needed: loading the system's CAs costs a plain-HTTP command
        # against a local daemon time for nothing.
        https = any(urlsplit(url).scheme == "https" for url in self.urls)
        self._verify: ssl.SSLContext | bool = tls_context(ca_file) if https or ca_file else True
        self._clients: dict[int, httpx.Client] = {}
        self._owned: list[httpx.Client] = []
        self._current = 0

    @property
    def url(self) -> str:
        """The URL that answered last (the first one before any answer)."""
        return self.urls[self._current]

    def close(self) -> None:
        """Close the connections of the clients made here; an injected one is its owner's."""
        for client in self._owned:
            client.close()

    def _client(self, index: int) -> httpx.Client:
        client = self._clients.get(index)
        if client is None:
            url = self.urls[index]
            injected = self._injected
            if isinstance(injected, httpx.Client):
                client = injected
            elif injected is not None and url in injected:
                client = injected[url]
            else:
                # A short connect timeout: an address that no longer answers (a replica gone
                # with its network) should hand over to the next URL in seconds, not in 30.
                timeout = httpx.Timeout(30.0, connect=CONNECT_TIMEOUT_S)
                client = httpx.Client(base_url=url, timeout=timeout, verify=self._verify)
                self._owned.append(client)
            self._clients[index] = client
        return client

    def _order(self) -> list[int]:
        """Every URL once, from the one that answered last."""
        count = len(self.urls)
        return [(self._current + step) % count for step in range(count)]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        repeatable = method.upper() in SAFE_METHODS
        failed = _Failures()
        for index in self._order():
            url = self.urls[index]
            try:
                response = self._client(index).request(
                    method, path, headers=self._headers[index], **kwargs
                )
            except httpx.TransportError as exc:
                if not repeatable and not _never_sent(exc):
                    raise _maybe_done(url, method, path, exc) from exc
                failed.unreachable(url, exc)
                continue
            if response.status_code == 503 and repeatable:
                failed.unavailable(url, _refusal(response))
                continue
            self._current = index
            if response.status_code >= 400:
                raise _refusal(response)
            return response
        raise failed.error()

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean).json()

    @contextmanager
    def stream(
        self, path: str, *, last_event_id: str | None = None, **params: Any
    ) -> Iterator[EventSource]:
        """A Server-Sent Events stream, opened as `request` sends a GET. When it breaks, the
        next stream opened starts at the next URL: a replica that dropped it is tried last."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        with self._streaming_get(path, headers, params) as (index, response):
            try:
                yield EventSource(response)
            except httpx.TransportError as exc:
                self._current = (index + 1) % len(self.urls)
                url = self.urls[index]
                raise Unreachable(f"lost the stream from clusterm at {url}: {exc}") from exc

    @contextmanager
    def download(self, path: str, **params: Any) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives (`iter_bytes`), tried on each URL in turn
        until one answers; a body cut off half-way is Unreachable (the caller asks again)."""
        with self._streaming_get(path, {}, params) as (index, response):
            try:
                yield response
            except httpx.TransportError as exc:
                url = self.urls[index]
                raise Unreachable(f"lost the download from clusterm at {url}: {exc}") from exc

    @contextmanager
    def _streaming_get(
        self, path: str, headers: dict[str, str], params: dict[str, Any]
    ) -> Iterator[tuple[int, httpx.Response]]:
        """A GET whose body is left unread, on the first URL that answers other than 503 (a
        refusal is raised as it is); yields the URL's index and the response."""
        clean = {k: v for k, v in params.items() if v is not None}
        failed = _Failures()
        for index in self._order():
            url = self.urls[index]
            with ExitStack() as stack:
                try:
                    response = stack.enter_context(
                        self._client(index).stream(
                            "GET", path, headers={**self._headers[index], **headers}, params=clean
                        )
                    )
                    if response.status_code >= 400:
                        response.read()
                except httpx.TransportError as exc:
                    failed.unreachable(url, exc)
                    continue
                if response.status_code == 503:
                    failed.unavailable(url, _refusal(response))
                    continue
                self._current = index
                if response.status_code >= 400:
                    raise _refusal(response)
                yield index, response
                return
        raise failed.error()

    def send(self, method: str, path: str, body: Any = None) -> Any:
        response = self.request(method, path, json=body)
        return response.json() if response.content else None


class _Failures:
    """Why each URL tried did not answer: the error once none has."""

    def __init__(self) -> None:
        self.tried: list[tuple[str, str]] = []
        self._first: tuple[str, httpx.TransportError] | None = None
        self._busy: Refused | None = None

    def unreachable(self, url: str, exc: httpx.TransportError) -> None:
        self.tried.append((url, _reason(exc)))
        self._first = self._first or (url, exc)

    def unavailable(self, url: str, refusal: Refused) -> None:
        self.tried.append((url, f"503 {refusal.error}: {refusal.message}"))
        self._busy = refusal

    def error(self) -> ApiError:
        many = len(self.tried) > 1
        every = "; ".join(f"{url}: {reason}" for url, reason in self.tried)
        if self._busy is not None:
            # A daemon answered: its refusal is the answer (exit 1), as with a single URL.
            if many:
                self._busy.message = f"no replica could serve this request ({every})"
            return self._busy
        assert self._first is not None, "every URL was tried"
        if not many:
            return _unreachable(*self._first)
        return Unreachable(
            f"cannot reach clusterm at any of its {len(self.tried)} URLs: {every}. "
            "Is any replica running? Set --url (repeatable) or CLUSTERM_URL (comma-separated)"
        )


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _never_sent(exc: httpx.TransportError) -> bool:
    """The request cannot have reached a daemon: no connection was made (a TLS handshake
    that failed is a connection not made)."""
    return isinstance(exc, NEVER_SENT)


def _maybe_done(url: str, method: str, path: str, exc: httpx.TransportError) -> Unreachable:
    return Unreachable(
        f"lost the connection to clusterm at {url} after sending {method.upper()} {path}: "
        f"{_reason(exc)}. It may or may not have been done, so it was not sent "
        "again to another URL; look (e.g. clusterctl job list, clusterctl timeline) before "
        "repeating it"
    )


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
