"""The browser tests' parts: one headless Chromium per test worker, a fresh browser context per
test, and a real `clusterm serve` with real jobs for the console to show.

The daemons run on SQLite only: the console reads nothing but the JSON API, whose answers are
tested on both backends by the domains' own tests.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.console.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Watch, new_page
from tests.core.server import Server
from tests.core.test_daemon import CLUSTERM
from tests.jobs.conftest import LOCAL_VARS

DRIFT_PLAYBOOK = Path(__file__).resolve().parents[1] / "drift" / "playbooks" / "env_nodes.yml"

# A loaded test machine (ansible-playbook starting beside the browser) can take seconds to
# answer; an auto-waiting assertion waits up to this for what it expects to see.
expect.set_options(timeout=20_000)

OpenTab = Callable[[str], tuple[Page, Watch]]


# Per module, not per session: while Playwright's sync API is open it leaves an asyncio loop
# marked running in the thread, and a later test of another package in the same worker that
# calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), "
        "or run the tests through tests/run.sh, which does it when run as root"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_tab(chromium: Browser) -> Iterator[OpenTab]:
    """Open a page on a daemon in this test's own browser context (no storage shared with other
    tests). At the end, the test fails on anything the page did wrong that it did not look at."""
    context = chromium.new_context(viewport=VIEWPORT)
    watches: list[Watch] = []

    def open_page(base_url: str) -> tuple[Page, Watch]:
        page, watch = new_page(context, base_url)
        watches.append(watch)
        return page, watch

    yield open_page
    try:
        problems = [p for w in watches if (p := w.problems())]
    finally:
        context.close()
    assert not problems, f"the console misbehaved: {problems}"


@dataclass
class World:
    """A running daemon, tokens for it by name, and what the setup made (jobs by purpose)."""

    server: Server
    tokens: dict[str, str] = field(default_factory=dict, repr=False)  # kept out of reports
    jobs: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, who: str = "admin") -> httpx.Client:
        """A client with the token named `who`."""
        return self.server.client(self.tokens[who])

    def clusterm(self, *args: str) -> str:
        """Run a `clusterm` admin command on the daemon's database, as an admin would."""
        env = {**os.environ, "CLUSTERM_DATABASE_URL": self.server.db_url}
        done = subprocess.run(
            [*CLUSTERM, *args, "--data-dir", str(self.server.data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def create_token(self, role: str, name: str) -> str:
        token = self.clusterm("token", "create", "--role", role, "--name", name).strip()
        self.tokens[name] = token
        return token

    def revoke_token(self, name: str) -> None:
        self.clusterm("token", "revoke", name)

    def register(self, *nodes: dict[str, Any]) -> None:
        response = self.client().post("/nodes", json=list(nodes))
        assert response.status_code == 201, response.text

    def commission(self, nodes: list[str], *, by: str = "admin", **extra_vars: Any) -> int:
        """Start a commission (job.yml, local connection) and return its id. No cleanup run:
        a failed host stays as the job left it, to be looked at."""
        body = {"nodes": nodes, "extra_vars": extra_vars, "cleanup": False}
        response = self.client(by).post("/commission/nodes", json=body)
        assert response.status_code == 202, response.text
        job_id: int = response.json()["id"]
        return job_id


def start_world(directory: Path, **env: str) -> World:
    """A daemon whose jobs run tests/jobs/playbooks/job.yml and whose drift check reads a Node
    list holding only m1; `env` adds settings (CLUSTERM_...)."""
    directory.mkdir(parents=True, exist_ok=True)
    server = Server(
        directory / "data",
        directory / "stderr.log",
        f"sqlite:///{directory / 'clusterm.db'}",
        # The test playbook's wait, for operators too.
        CLUSTERM_OPERATOR_EXTRA_VARS=json.dumps({"sleep_s": {"type": "int", "min": 0, "max": 60}}),
        CLUSTERM_CLUSTER_NODES_PLAYBOOK=str(DRIFT_PLAYBOOK),
        CLUSTERM_ANSIBLE_ENV=json.dumps({"CLUSTERM_TEST_NODE_NAME": "m1"}),
        CLUSTERM_DRIFT_INTERVAL_S="0",  # checks only when asked: the tests decide what is missing
        CLUSTERM_TIMELINE_STREAM_POLL_S="0.2",
    )
    server.env.update(env)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    world = World(server)
    world.tokens["admin"] = server.admin_token
    return world


def local_node(name: str, group: str = "worker", **extra: Any) -> dict[str, Any]:
    """A node whose jobs run on this machine (Ansible's local connection)."""
    variables = {**LOCAL_VARS, **extra.pop("vars", {})}
    return {"name": name, "address": "127.0.0.1", "host_group": group, "vars": variables, **extra}
