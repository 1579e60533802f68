"""A run spec's check mode and tags reach ansible-playbook (app.ansible.runner.run_playbook, in the
child process the daemon uses): a real playbook, on this machine, writing only in a temp dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app.ansible import process
from app.ansible.spec import RunResult, RunSpec, TaskResult

PLAYBOOK = """
- name: Write two files
  hosts: all
  gather_facts: false
  tasks:
    - name: Write the first file
      ansible.builtin.copy:
        dest: "{{ out }}/first"
        content: "first\\n"
      tags: [first]
    - name: Write the second file
      ansible.builtin.copy:
        dest: "{{ out }}/second"
        content: "second\\n"
      tags: [second]
"""


def run(tmp_path: Path, **options: object) -> tuple[RunResult, list[TaskResult], str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    here:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    spec = RunSpec(
        private_data_dir=run_dir,
        playbook=playbook,
        inventory=inventory,
        extra_vars={"out": str(tmp_path / "out")},
        env={
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        },
        timeout_s=120,
        **options,  # type: ignore[arg-type]
    )
    output: list[str] = []
    tasks: list[TaskResult] = []
    result = process.run_playbook(
        spec, on_output=output.append, should_cancel=lambda: False, on_tasks=tasks.extend
    )
    return result, tasks, "".join(output)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


def test_check_mode_changes_nothing_and_says_what_would_change(tmp_path: Path, out: Path) -> None:
    result, tasks, log = run(tmp_path, check=True)
    assert result.status == "successful", log
    assert list(out.iterdir()) == []
    assert {t.task: t.status for t in tasks} == {
        "Write the first file": "changed",
        "Write the second file": "changed",
    }
    assert result.hosts["here"]["changed"] == 2
    assert "+first" in log, "--diff shows the content it would write"


def test_tags_and_skip_tags_select_the_tasks(tmp_path: Path, out: Path) -> None:
    result, tasks, log = run(tmp_path, tags=("second",))
    assert result.status == "successful", log
    assert [t.task for t in tasks] == ["Write the second file"]
    assert sorted(p.name for p in out.iterdir()) == ["second"]

    result, tasks, log = run(tmp_path, tags=("first", "second"), skip_tags=("second",))
    assert result.status == "successful", log
    assert [t.task for t in tasks] == ["Write the first file"]
    assert (out / "first").read_text() == "first\n"


def test_a_spec_keeps_its_options_across_the_process_boundary(tmp_path: Path) -> None:
    import pickle

    spec = RunSpec(
        private_data_dir=tmp_path,
        playbook=tmp_path / "p.yml",
        inventory=tmp_path / "h.yml",
        extra_vars={},
        env={},
        timeout_s=1,
        check=True,
        tags=["a", "b"],  # type: ignore[arg-type]
        skip_tags=("c",),
    )
    again = pickle.loads(pickle.dumps(spec))  # noqa: S301 - our own object
    assert (again.check, again.tags, again.skip_tags) == (True, ("a", "b"), ("c",))
