"""Real servers on loopback ports that stand for replicas which cannot serve: one that answers
every request with 503 (a replica still starting, or one whose database is unreachable), one that
reads a request and hangs up without answering (a replica killed while it worked), and a port
where nothing listens (a replica that is gone)."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Seen:
    """The requests a server received, as (method, path)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def add(self, method: str, path: str) -> None:
        with self.lock:
            self.requests.append((method, path))


@contextmanager
def unavailable() -> Iterator[tuple[str, Seen]]:
    """A server answering 503 with the daemon's error body to every request."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.add(self.command, self.path)
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps(
                {"error": "NotReady", "message": "starting: migrating the database"}
            ).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test asserts on what it saw

    with _running(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url, seen


@contextmanager
def hangs_up() -> Iterator[tuple[str, Seen]]:
    """A server that reads a request's head and closes the connection without an answer."""
    seen = Seen()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            method, path, _ = data.split(b"\r\n", 1)[0].decode().split(" ", 2)
            seen.add(method, path)
            self.request.close()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    with _running(server) as url:
        yield url, seen


@contextmanager
def _running(server: socketserver.TCPServer) -> Iterator[str]:
    server.daemon_threads = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
