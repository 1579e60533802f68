"""An inventory of hosts that Ansible runs on this machine (local connection, this Python)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path


def local_inventory(path: Path, hosts: Iterable[str]) -> Path:
    path.write_text(
        "all:\n  hosts:\n"
        + "".join(
            f"    {host}:\n      ansible_connection: local\n"
            f"      ansible_python_interpreter: {sys.executable}\n"
            for host in hosts
        )
    )
    return path
