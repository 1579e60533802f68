"""The environment of ansible-playbook, the same for every run: a job's and a drift check's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app.config import Settings


def ansible_env(settings: Settings) -> dict[str, str]:
    """settings.ansible_env, then ansible-playbook's directory on PATH and clusterm's SSH
    settings (key, host key policy), which win over it."""
    return {**settings.ansible_env, **_ssh_env(settings)}


def _ssh_env(settings: Settings) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    if settings.ssh_private_key_file is not None:
        env["ANSIBLE_PRIVATE_KEY_FILE"] = str(settings.ssh_private_key_file)
    if settings.ssh_host_key_policy == "off":
        # runner's own default, made explicit.
        env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    else:
        strict = "accept-new" if settings.ssh_host_key_policy == "accept-new" else "yes"
        env["ANSIBLE_HOST_KEY_CHECKING"] = "True"
        # The file is the database's known hosts, written before each run and read back after
        # it by the leader (app.cluster.known_hosts), so every replica trusts the same keys.
        env["ANSIBLE_SSH_COMMON_ARGS"] = (
            f"-o StrictHostKeyChecking={strict} -o UserKnownHostsFile={settings.known_hosts_file}"
        )
    return env
