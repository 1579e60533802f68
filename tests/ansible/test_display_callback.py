"""clusterm's awx_display (docs/contracts.md#runner-display-callback): ansible-runner's display
callback with three costs taken out. What runner hears of a run must not change: every event, its
data and its lines are the same as with runner's own callback, and Ansible's debug output, when
asked for, still reaches the log."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.ansible import eventjournal, runner
from app.ansible.spec import RunSpec, RunStatus
from tests.ansible.local import local_inventory

# Each kind of event the callback makes: a play and tasks, a changed command, a loop, a skipped
# task, an ignored failure, a no_log result, a rescued failure, a warning printed outside any
# event (a pattern that matches no host), a message at a verbosity the run does not show, and
# the recap.
PLAYBOOK = """\
- name: No host here
  hosts: nosuchgroup
  gather_facts: false
  tasks:
    - name: Never runs
      ansible.builtin.debug:
        msg: never

- name: Every kind of event
  hosts: all
  gather_facts: false
  tasks:
    - name: Say something
      ansible.builtin.debug:
        msg: "hello {{ inventory_hostname }}"

    - name: Change something
      ansible.builtin.command: "echo changed {{ inventory_hostname }}"
      changed_when: true

    - name: Loop
      ansible.builtin.debug:
        msg: "item {{ item }}"
      loop: [1, 2]

    - name: Skipped
      ansible.builtin.debug:
        msg: skipped
      when: false

    - name: Fail and go on
      ansible.builtin.fail:
        msg: "failed on purpose"
      ignore_errors: true

    - name: A secret
      ansible.builtin.set_fact:
        secret: hunter2
      no_log: true

    - name: Quiet
      ansible.builtin.debug:
        msg: only at -vv
        verbosity: 2

    - name: Rescued
      block:
        - name: Fails
          ansible.builtin.fail:
            msg: "to be rescued"
      rescue:
        - name: Rescue
          ansible.builtin.debug:
            msg: rescued
"""

# What differs between two runs of the same playbook, whatever the callback: ids, clocks, pids.
_VOLATILE = frozenset(
    {
        "uuid",
        "parent_uuid",
        "created",
        "pid",
        "playbook_uuid",
        "play_uuid",
        "task_uuid",
        "start",
        "end",
        "delta",
        "duration",
        "runner_ident",
    }
)


# The handler factory itself, whatever a test has put in its place.
_EVENT_HANDLER = runner.event_handler


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _run(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, **env: str
) -> tuple[RunStatus, list[dict[str, Any]], str]:
    """Run PLAYBOOK through clusterm's wrapper and return every event handed to clusterm's
    handler, each marked "journaled": whether its data came from clusterm's event journal."""
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    inventory = local_inventory(tmp_path / "hosts.yml", ("h1", "h2"))
    events: list[dict[str, Any]] = []

    def recording(*args: Any, **kwargs: Any) -> Callable[[dict[str, Any]], bool]:
        handle = _EVENT_HANDLER(*args, **kwargs)

        def on_event(event: dict[str, Any]) -> bool:
            events.append(event)
            return handle(event)

        return on_event

    journaled: dict[str, bool] = {}
    take = eventjournal.EventJournal.take

    def recording_take(self: eventjournal.EventJournal, uuid: object) -> dict[str, Any] | None:
        data = take(self, uuid)
        journaled[str(uuid)] = data is not None
        return data

    monkeypatch.setattr(runner, "event_handler", recording)
    monkeypatch.setattr(eventjournal.EventJournal, "take", recording_take)
    output: list[str] = []
    result = runner.run_playbook(
        RunSpec(
            private_data_dir=tmp_path / name,
            playbook=tmp_path / "pb.yml",
            inventory=inventory,
            extra_vars={},
            env={
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                # One fork: the two hosts' events come in the same order in every run.
                "ANSIBLE_FORKS": "1",
                **env,
            },
            timeout_s=120,
        ),
        on_output=output.append,
        should_cancel=lambda: False,
    )
    for event in events:
        event["journaled"] = journaled[event["uuid"]]
    return result.status, events, "\n".join(output)


def test_runner_hears_the_same_events_as_with_its_own_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, ours, text = _run(tmp_path, "ours", monkeypatch)
    with monkeypatch.context() as m:
        m.setattr(runner, "CALLBACK_DIR", Path("/nonexistent-callback-dir"))
        own_status, theirs, _ = _run(tmp_path, "theirs", monkeypatch)

    assert status == own_status == RunStatus.SUCCESSFUL, text
    kinds = [e["event"] for e in ours]
    for kind in (
        "playbook_on_start",
        "warning",
        "playbook_on_no_hosts_matched",
        "runner_on_start",
        "runner_on_ok",
        "runner_item_on_ok",
        "runner_on_skipped",
        "runner_on_failed",
        "playbook_on_stats",
    ):
        assert kind in kinds, (kind, kinds)
    # Every event's data came from clusterm's journal with clusterm's callback, from runner's
    # partial files with runner's; and the events are the same.
    assert all(e.pop("journaled") for e in ours)
    assert not any(e.pop("journaled") for e in theirs)
    assert [_stable(e) for e in ours] == [_stable(e) for e in theirs]
    secret = next(e for e in ours if e["event_data"].get("task") == "A secret")
    assert "hunter2" not in str(secret)  # no_log still censors the result
    # Nothing is left behind: no partial file (runner reads and removes its own), no journal.
    for run in ("ours", "theirs"):
        (artifacts,) = (tmp_path / run / "artifacts").iterdir()
        assert list((artifacts / "job_events").iterdir()) == []
        assert not (tmp_path / run / "events").exists()


def test_the_playbook_loads_clusterms_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At verbosity 4 Ansible names the file of each callback it loads.
    status, _, text = _run(tmp_path, "run", monkeypatch, ANSIBLE_VERBOSITY="4")

    assert status == RunStatus.SUCCESSFUL
    loaded = [line for line in text.splitlines() if "Loading callback plugin awx_display" in line]
    assert loaded
    assert all(str(runner.CALLBACK_DIR / "awx_display.py") in line for line in loaded), loaded


def test_a_run_s_own_callback_directory_is_kept_after_clusterms() -> None:
    env = runner.playbook_env({"ANSIBLE_CALLBACK_PLUGINS": "/opt/callbacks", "X": "1"})

    assert env["ANSIBLE_CALLBACK_PLUGINS"] == f"{runner.CALLBACK_DIR}:/opt/callbacks"
    assert env["X"] == "1"
    assert runner.playbook_env({})["ANSIBLE_CALLBACK_PLUGINS"] == str(runner.CALLBACK_DIR)


def test_debug_output_asked_for_still_reaches_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, events, text = _run(tmp_path, "run", monkeypatch, ANSIBLE_DEBUG="1")

    debug = [e for e in events if e["event"] == "debug"]
    assert any("entering _queue_task()" in e["stdout"] for e in debug), text[-2000:]


# An ansible-runner whose display callback is built otherwise: a plain stdout callback.
OTHER_RUNNER_CALLBACK = """\
from ansible.plugins.callback.default import CallbackModule as Default


class CallbackModule(Default):
    CALLBACK_NAME = "awx_display"
"""


def test_another_runner_s_callback_runs_unchanged_and_the_log_says_so(tmp_path: Path) -> None:
    callback = tmp_path / "lib" / "ansible_runner" / "display_callback" / "callback"
    callback.mkdir(parents=True)
    (tmp_path / "lib" / "ansible_runner" / "__init__.py").write_text("")
    (callback / "awx_display.py").write_text(OTHER_RUNNER_CALLBACK)
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: still here\n"
    )
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    local:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "lib"),  # found before the installed ansible-runner
        "ANSIBLE_CALLBACK_PLUGINS": str(runner.CALLBACK_DIR),
        "ANSIBLE_STDOUT_CALLBACK": "awx_display",
        "ANSIBLE_NOCOLOR": "1",
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(tmp_path / "hosts.yml"),
            str(tmp_path / "pb.yml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "clusterm's awx_display: " in text
    assert "ansible-runner's display callback runs unchanged" in text
    assert '"msg": "still here"' in text
