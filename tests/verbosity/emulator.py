"""Kubernetes components' `/debug/flags/v`, emulated over real HTTP(S) on loopback.

One uvicorn server listens on many loopback sockets; each socket is one component on one node
(an `Endpoint`) with its own level, token, mode and delay. The handler implements the contract
in docs/contracts.md#flags-endpoint byte for byte, as k8s.io/apiserver's `StringFlagPutHandler`
with component-base's `GlogSetter` (Kubernetes 1.27+) writes it: `text/plain`,
`X-Content-Type-Options: nosniff`, the text plus a newline (Go's `fmt.Fprintln`). It is written
from the contract, not from clusterm's code, so a mistake in clusterm's parsing cannot hide behind
the same mistake here.

An endpoint can also play an apiserver relaying `/api/v1/nodes/{node}/proxy/debug/flags/v` to
the kubelet endpoint registered under that node's name.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import uvicorn

from tests.polling import wait_until

MAX_ACCEPTED = 2147483647
RELAY_RE = re.compile(r"^/api/v1/nodes/([a-z0-9.-]+)/proxy(/debug/flags/v)$")


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    authorization: str | None
    # When the request arrived and when its answer had gone (time.monotonic()): the order of the
    # requests, and whether two were being served at once.
    received_at: float = 0.0
    answered_at: float = 0.0


@dataclass
class Endpoint:
    name: str
    port: int
    level: int = 2
    token: str | None = None
    # ok | disabled (kubelet 405) | disabled404 | forbidden (403)
    mode: str = "ok"
    delay_s: float = 0.0
    relay: bool = False  # plays an apiserver relaying to kubelets by node name
    requests: list[Request] = field(default_factory=list)

    @property
    def puts(self) -> int:
        return sum(r.method == "PUT" for r in self.requests)


def go_quote(raw: bytes) -> str:
    out = ""
    for byte in raw:
        char = chr(byte)
        if char in '"\\':
            out += "\\" + char
        elif char in "\a\b\f\n\r\t\v":
            out += "\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(char)]
        elif 0x20 <= byte < 0x7F:
            out += char
        else:
            out += f"\\x{byte:02x}"
    return f'"{out}"'


def glog_setter(raw: bytes) -> tuple[int | None, str]:
    """(level, response text) as component-base's GlogSetter answers; level None on error."""
    if not raw or not all(0x30 <= b <= 0x39 for b in raw):
        return None, f"strconv.ParseUint: parsing {go_quote(raw)}: invalid syntax"
    value = int(raw)
    if value > MAX_ACCEPTED:
        return None, f"strconv.ParseUint: parsing {go_quote(raw)}: value out of range"
    return value, f"successfully set klog.logging.verbosity to {raw.decode()}"


class Emulator:
    def __init__(self, *, ca: trustme.CA | None, cert_dir: Path | None = None) -> None:
        self.endpoints: dict[int, Endpoint] = {}
        self.by_name: dict[str, Endpoint] = {}
        self._sockets: list[socket.socket] = []
        self._ca = ca
        self._cert_dir = cert_dir
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def add(self, name: str, *, host: str = "127.0.0.1", **options: Any) -> Endpoint:
        """An endpoint on `host` (127.0.0.1, or ::1 for IPv6) at a port of its own."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        sock.listen(1024)
        sock.setblocking(False)
        endpoint = Endpoint(name=name, port=sock.getsockname()[1], **options)
        self._sockets.append(sock)
        self.endpoints[endpoint.port] = endpoint
        self.by_name[name] = endpoint
        return endpoint

    @property
    def total_requests(self) -> int:
        return sum(len(e.requests) for e in self.endpoints.values())

    def start(self) -> Emulator:
        if self._ca is None:
            return self._start({})
        assert self._cert_dir is not None
        pem = self._cert_dir / f"server-{id(self)}.pem"
        cert = self._ca.issue_cert("127.0.0.1", "::1", "localhost")
        cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        return self.start_tls(str(pem))

    def start_tls(self, pem: str) -> Emulator:
        """Serve HTTPS with the key and certificate chain in `pem`."""
        return self._start({"ssl_certfile": pem, "ssl_keyfile": pem})

    def _start(self, options: dict[str, Any]) -> Emulator:
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=1,
            http="h11",
            interface="asgi3",
            proxy_headers=False,
            loop="asyncio",
            backlog=2048,
            **options,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": self._sockets}, daemon=True
        )
        self._thread.start()
        wait_until(self._started, timeout_s=10, what="the emulator to start", interval_s=0.01)
        return self

    def _started(self) -> bool:
        assert self._server is not None
        assert self._thread is not None
        assert self._thread.is_alive(), "the emulator failed to start"
        return self._server.started

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        for sock in self._sockets:
            sock.close()

    async def _app(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        endpoint = self.endpoints[scope["server"][1]]
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization")
        request = Request(
            scope["method"],
            scope["path"],
            body,
            auth.decode() if auth else None,
            received_at=time.monotonic(),
        )
        endpoint.requests.append(request)
        status, text, content_type = self._handle(endpoint, scope, body, auth)
        if endpoint.delay_s:
            await asyncio.sleep(endpoint.delay_s)
        payload = text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        request.answered_at = time.monotonic()

    def _handle(
        self, endpoint: Endpoint, scope: dict[str, Any], body: bytes, auth: bytes | None
    ) -> tuple[int, str, str]:
        path = scope["path"]
        if endpoint.relay:
            match = RELAY_RE.match(path)
            if match is None or match.group(1) not in self.by_name:
                return 404, "404 page not found\n", "text/plain; charset=utf-8"
            if endpoint.token is not None and auth != f"Bearer {endpoint.token}".encode():
                return 401, "Unauthorized\n", "text/plain; charset=utf-8"
            kubelet = self.by_name[match.group(1)]
            kubelet.requests.append(Request(scope["method"], match.group(2), body, None))
            return self._flags(kubelet, scope["method"], body)
        if path != "/debug/flags/v" or endpoint.mode == "disabled404":
            return 404, "404 page not found\n", "text/plain; charset=utf-8"
        if endpoint.token is not None and auth != f"Bearer {endpoint.token}".encode():
            return 401, "Unauthorized\n", "text/plain; charset=utf-8"
        if endpoint.mode == "forbidden":
            text = (
                "Forbidden (user=system:anonymous, verb=update, resource=nodes, "
                "subresource=proxy)\n"
            )
            return 403, text, "text/plain; charset=utf-8"
        if endpoint.mode == "disabled":
            return 405, "flags endpoint is disabled.\n", "text/plain; charset=utf-8"
        return self._flags(endpoint, scope["method"], body)

    @staticmethod
    def _flags(endpoint: Endpoint, method: str, body: bytes) -> tuple[int, str, str]:
        if method != "PUT":
            return 406, "unsupported http method\n", "text/plain"
        level, text = glog_setter(body)
        if level is None:
            return 400, text + "\n", "text/plain"
        endpoint.level = level
        return 200, text + "\n", "text/plain"


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Trap:
    """A loopback port that records every connection made to it, whatever is sent (or not):
    the place a request must never reach."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
