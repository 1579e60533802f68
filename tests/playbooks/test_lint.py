"""ansible-lint, production profile, offline, over the playbooks and roles (.ansible-lint)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.playbooks.conftest import PLAYBOOK_DIR

REPO = PLAYBOOK_DIR.parent
# The one installed next to this Python (the virtualenv's), else the one on PATH.
_NEXT_TO_PYTHON = Path(sys.executable).parent / "ansible-lint"
ANSIBLE_LINT = str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else "ansible-lint"


def lint(cwd: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    # ansible-lint warns when its own directory is not first on PATH: put it there.
    path = os.pathsep.join([str(Path(ANSIBLE_LINT).parent), os.environ.get("PATH", "")])
    return subprocess.run(
        [ANSIBLE_LINT, "--offline", "--nocolor", *paths],
        cwd=cwd,
        env={**os.environ, "PATH": path, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_the_playbooks_and_roles_pass_ansible_lint_production_profile() -> None:
    proc = lint(REPO, "ansible/")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Profile 'production' was required, and it passed." in output, output
    assert " 0 failure(s), 0 warning(s)" in output, output


def test_the_configuration_catches_what_it_is_meant_to(tmp_path: Path) -> None:
    # The same configuration on a playbook with two faults: a lowercase task name, and a
    # registered variable outside the clusterm_ namespace the daemon guards (.ansible-lint).
    shutil.copy(REPO / ".ansible-lint", tmp_path / ".ansible-lint")
    (tmp_path / "site.yml").write_text(
        "- name: Probe the nodes\n"
        "  hosts: targets\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: probe the node\n"
        "      ansible.builtin.command: uname -r\n"
        "      register: kernel\n"
        "      changed_when: false\n"
    )
    proc = lint(tmp_path, "site.yml")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "name[casing]" in output, output
    assert "var-naming[pattern]" in output, output
    assert "(register: kernel)" in output, output
