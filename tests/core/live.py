"""The real app on a loopback port, served by uvicorn in a thread of the test process: for
streams (TestClient buffers a response whole, and a stream never ends) and for tests that watch
what the daemon does from inside the process (its outgoing HTTP, its log)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from app.config import Settings
from app.main import create_app

FINISHED = {"successful", "failed", "canceled", "timeout", "interrupted"}


@contextmanager
def serve(settings: Settings, *, timeout_s: float = 60.0) -> Iterator[httpx.Client]:
    """An httpx client on the running daemon, with the admin token; every job ended on exit."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_config=None, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the daemon did not start in 30 s"
            assert thread.is_alive(), "the daemon stopped while starting"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        token = settings.admin_token_file.read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=timeout_s) as client:
            yield client
            end_jobs(client)
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive(), "the daemon did not stop within 30 s"


def wait_job(http: httpx.Client, job_id: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def end_jobs(http: httpx.Client) -> None:
    """Cancel whatever job is running, and wait until none is active."""
    deadline = time.monotonic() + 60
    while http.get("/info/job/active").status_code == 200:
        assert time.monotonic() < deadline, "a job is still active 60 s after it was canceled"
        http.post("/info/job/active/cancel")
        time.sleep(0.1)
