"""clusterctl as an installed command: shell completion and start-up cost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLUSTERCTL = str(Path(sys.executable).parent / "clusterctl")


def test_bash_completion_completes_commands() -> None:
    env = {
        **os.environ,
        "_CLUSTERCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "clusterctl nod",
        "COMP_CWORD": "1",
    }
    r = subprocess.run([CLUSTERCTL], env=env, capture_output=True, text=True, timeout=30)
    assert set(r.stdout.split()) == {"nodes", "node"}


def test_show_completion_prints_a_script() -> None:
    r = subprocess.run(
        [CLUSTERCTL, "--show-completion", "bash"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0
    assert "_clusterctl_completion" in r.stdout


def test_the_cli_does_not_import_the_daemon_or_ansible() -> None:
    # Keeps a command against a local daemon instant: no FastAPI, SQLAlchemy or Ansible on import.
    code = (
        "import sys, clusterctl.main; "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'ansible', 'app', 'pydantic') "
        "if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "[]", r.stdout
