#!/usr/bin/env python3
"""DEMO ONLY: entry point of the simulated commands in ansible/demo/bin/ (symlinks to this file).

The command's name (the symlink's name) picks the simulation: kubeadm (fakekubeadm.py), kubectl
(fakekubectl.py), apt-get, systemctl, hostname... (fakehost.py). See README.md in this directory.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

import fakehost
import fakekubeadm
import fakekubectl


def main(argv: list[str]) -> int:
    name = os.path.basename(argv[0])
    command = {**fakehost.COMMANDS, **fakekubeadm.COMMANDS, **fakekubectl.COMMANDS}.get(name)
    if command is None:
        print(f"demo shim: no simulation for {name!r}", file=sys.stderr)
        return 127
    fakehost.node_root()  # the first simulated command on a node lays out its root
    if failed := fakehost.simulated_failure(name, argv[1:]):
        print(f"fakehost: {failed} failed (simulated by var/lib/fakehost/fail)", file=sys.stderr)
        return 1
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
