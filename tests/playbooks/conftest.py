"""Run the shipped playbooks through ansible-runner over real SSH to the test hosts."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ansible_runner
import pytest

from app.ansible.runner import report_of
from tests.hosts.fixture import SshHosts, ssh_hosts  # noqa: F401 - the fixture, for these tests
from tests.hosts.sshd import REPO

if TYPE_CHECKING:
    from tests.playbooks.local_sandbox import Commissioned

PLAYBOOK_DIR = REPO / "ansible"
# The one installed next to this Python (the virtualenv's), else the one on PATH.
_NEXT_TO_PYTHON = Path(sys.executable).parent / "ansible-playbook"
ANSIBLE_PLAYBOOK = str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else "ansible-playbook"

# Short windows for tests; the product defaults are in ansible/roles/*/defaults/main.yml.
FAST_JOIN: dict[str, Any] = {
    "clusterm_join_retries": 2,
    "clusterm_join_stability_window": 2,
    "clusterm_join_poll": 0.3,
    "clusterm_join_backoff": 0,
    "clusterm_join_register_timeout": 5,
    "clusterm_join_timeout": 20,
    # No pod network to download (tests/playbooks/test_roles.py installs a pinned one).
    "clusterm_cni_manifest_url": "",
}


@dataclass
class PlaybookRun:
    """One playbook run through ansible-runner, as the daemon runs it, read from its events."""

    status: str
    rc: int
    events: list[dict[str, Any]]
    stdout: str

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        for event in reversed(self.events):
            if event["event"] == "playbook_on_stats":
                data = event["event_data"]
                keys = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
                hosts = set().union(*(data.get(k) or {} for k in keys))
                return {h: {k: (data.get(k) or {}).get(h, 0) for k in keys} for h in hosts}
        raise AssertionError(f"no playbook_on_stats event:\n{self.stdout}")

    def results(self, task_name: str) -> dict[str, list[dict[str, Any]]]:
        """The results of the tasks of that name that ran (not skipped), per host, in order."""
        found: dict[str, list[dict[str, Any]]] = {}
        for event in self.events:
            data = event.get("event_data", {})
            if event["event"] in RESULT_EVENTS and data.get("task") == task_name:
                found.setdefault(data["host"], []).append(data["res"])
        return found

    def reports(self, kind: str) -> dict[str, list[dict[str, Any]]]:
        """The reports of that type, per host, in order, as the daemon recognises them."""
        found: dict[str, list[dict[str, Any]]] = {}
        for event in self.events:
            data = event.get("event_data", {})
            report = report_of(data) if event["event"] == "runner_on_ok" else None
            if report is not None and report[0] == kind:
                found.setdefault(data["host"], []).append(report[1])
        return found

    def failure(self, host: str) -> str:
        """The message of the task that failed `host` (not an ignored error)."""
        for event in self.events:
            data = event.get("event_data", {})
            if data.get("host") != host or data.get("ignore_errors"):
                continue
            if event["event"] in ("runner_on_failed", "runner_on_unreachable"):
                return str(data["res"].get("msg", ""))
        raise AssertionError(f"nothing failed on {host}:\n{self.stdout}")

    def outcome(self) -> dict[str, str]:
        """Host → ok | failed | unreachable, from the recap."""
        return {
            host: "unreachable" if s["dark"] else "failed" if s["failures"] else "ok"
            for host, s in self.stats.items()
        }


RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable")


def run_playbook(hosts: SshHosts, playbook: str, inventory: Path, **extra_vars: Any) -> PlaybookRun:
    variables = {"clusterm_job_id": 1, "clusterm_job_kind": playbook.removesuffix(".yml")}
    env = hosts.ansible_env() | {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
    }
    private = Path(tempfile.mkdtemp(prefix="run-", dir=hosts.base))
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(PLAYBOOK_DIR / playbook),
        inventory=str(inventory),
        extravars=variables | FAST_JOIN | extra_vars,
        envvars=env,
        quiet=True,
        timeout=300,
        cancel_callback=lambda: False,
        settings={"pexpect_timeout": 0.2},
    )
    with runner.stdout as output:
        stdout = output.read()
    return PlaybookRun(
        status=runner.status, rc=runner.rc, events=list(runner.events), stdout=stdout
    )


@pytest.fixture(scope="session")
def commissioned(tmp_path_factory: pytest.TempPathFactory) -> Commissioned:
    """Commissioned sandbox clusters, built once per test run and copied for each test."""
    from tests.playbooks.local_sandbox import Commissioned  # that module imports this one

    # Under xdist, the parent of a worker's base temp is the run's, shared by its workers (and
    # by no other run); without xdist, the base temp is the run's own.
    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_dir = run_dir.parent
    base = run_dir / "commissioned"
    base.mkdir(exist_ok=True)
    return Commissioned(base)
