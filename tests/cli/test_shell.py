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
    # Without a shell among its ancestors (a CI runner, a background job) typer cannot detect one;
    # with detection off, --show-completion takes the shell by name, as a user without one would.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    r = subprocess.run(
        [CLUSTERCTL, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
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
