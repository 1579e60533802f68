"""Every playbook under ansible/ parses: roles, task files and variables resolve."""

from __future__ import annotations

import subprocess

from tests.playbooks.conftest import ANSIBLE_PLAYBOOK, PLAYBOOK_DIR

SHIPPED = {"commission.yml", "decommission.yml", "update.yml", "cleanup.yml", "discover.yml"}


def test_every_playbook_passes_syntax_check() -> None:
    playbooks = sorted(p.name for p in PLAYBOOK_DIR.glob("*.yml"))
    assert set(playbooks) >= SHIPPED
    # One ansible-playbook for all of them: its start-up is most of the cost.
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "--syntax-check", "-i", "localhost,", *playbooks],
        cwd=PLAYBOOK_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in playbooks:
        assert f"playbook: {name}" in proc.stdout
