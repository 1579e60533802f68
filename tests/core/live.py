"""The real app on a loopback port, served by uvicorn in a thread of the test process: for
streams (TestClient buffers a response whole, and a stream never ends) and for tests that watch
what the daemon does from inside the process (its outgoing HTTP, its log)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from app.config import Settings
from tests.polling import wait_until
from tests.timeline.conftest import serve as serve_url


@contextmanager
def serve(settings: Settings, *, timeout_s: float = 60.0) -> Iterator[httpx.Client]:
    """An httpx client on the running daemon, with the admin token; every job ended on exit."""
    with serve_url(settings) as url:
        token = settings.admin_token_file.read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=timeout_s) as client:
            yield client
            end_jobs(client)


def end_jobs(http: httpx.Client) -> None:
    """Cancel whatever job is running, and wait until none is active."""

    def none_active() -> bool:
        if http.get("/info/job/active").status_code != 200:
            return True
        http.post("/info/job/active/cancel")
        return False

    wait_until(none_active, timeout_s=60, what="no active job after a cancel", interval_s=0.1)
