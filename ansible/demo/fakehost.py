"""DEMO ONLY: a simulated host for clusterm's sandbox demo and its tests. Never use on a real node.

Many "nodes" share one machine, so each simulated node lives in its own root directory
(`FAKEHOST_ROOT`, the same directory the playbooks get as `clusterm_node_root`). The commands the
playbooks run that would change the real machine (apt-get, systemctl, modprobe, sysctl, swapoff) are
replaced by these functions, which only record what they were asked in that root, under
`var/lib/fakehost/`. `hostname -f` answers `FAKEHOST_FQDN` so each node can have its own name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Command = Callable[[list[str]], int]


# What every Debian/Ubuntu host has and the playbooks rely on (a swap line too: they turn it off).
SKELETON_DIRS = ("etc/modules-load.d", "etc/sysctl.d", "etc/apt/sources.list.d", "var/lib")
FSTAB = "UUID=0a1b2c3d / ext4 errors=remount-ro 0 1\n/swap.img none swap sw 0 0\n"


def node_root() -> Path:
    """The simulated node's root, laid out like a fresh Debian host the first time it is used."""
    root = os.environ.get("FAKEHOST_ROOT")
    if not root or root == "/":
        # Refuse rather than write into the real /var/lib: the demo must never touch this machine.
        sys.exit("fakehost: FAKEHOST_ROOT must name the simulated node's root directory")
    path = Path(root)
    if not (path / "etc/fstab").exists():
        for sub in SKELETON_DIRS:
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "etc/fstab").write_text(FSTAB)
    return path


@contextlib.contextmanager
def locked_json(path: Path, default: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Read-modify-write a JSON file under an exclusive lock (nodes run commands at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else default
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)


def _host_state() -> contextlib.AbstractContextManager[dict[str, Any]]:
    return locked_json(
        node_root() / "var/lib/fakehost/host.json",
        {"packages": {}, "held": [], "units": {}, "modules": [], "sysctl_applied": 0},
    )


def installed(package: str) -> bool:
    path = node_root() / "var/lib/fakehost/host.json"
    return path.exists() and package in json.loads(path.read_text())["packages"]


def unit_active(unit: str) -> bool:
    path = node_root() / "var/lib/fakehost/host.json"
    if not path.exists():
        return False
    return bool(json.loads(path.read_text())["units"].get(unit, {}).get("active"))


def apt_get(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if not words:
        print("E: Invalid operation", file=sys.stderr)
        return 100
    op, packages = words[0], words[1:]
    if op == "update":
        print("Reading package lists... Done (simulated)")
        return 0
    if op not in ("install", "remove", "purge"):
        print(f"E: Invalid operation {op}", file=sys.stderr)
        return 100
    with _host_state() as state:
        if op == "install":
            new = [p for p in packages if p not in state["packages"]]
            for p in new:
                state["packages"][p] = "simulated"
                # Packages ship their configuration directory, as containerd's does.
                (node_root() / "etc" / p).mkdir(parents=True, exist_ok=True)
            print(f"{len(new)} newly installed, 0 to remove (simulated)")
        else:
            gone = [p for p in packages if state["packages"].pop(p, None)]
            print(f"0 newly installed, {len(gone)} to remove (simulated)")
    return 0


def apt_mark(args: list[str]) -> int:
    if not args or args[0] not in ("hold", "unhold"):
        print("E: unsupported apt-mark operation (simulated)", file=sys.stderr)
        return 100
    with _host_state() as state:
        for p in args[1:]:
            if args[0] == "hold" and p not in state["held"]:
                state["held"].append(p)
                print(f"{p} set on hold.")
            elif args[0] == "unhold" and p in state["held"]:
                state["held"].remove(p)
                print(f"Canceled hold on {p}.")
    return 0


def systemctl(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    now = "--now" in args
    if not words:
        return 0
    op, units = words[0], [u.removesuffix(".service") for u in words[1:]]
    if op == "daemon-reload":
        return 0
    if op == "is-active":
        active = all(unit_active(u) for u in units)
        print("active" if active else "inactive")
        return 0 if active else 3
    with _host_state() as state:
        for unit in units:
            if op in ("start", "restart", "enable", "stop", "disable") and not _unit_known(
                state, unit
            ):
                print(f"Failed to {op} {unit}.service: Unit {unit}.service not found.")
                return 5
            entry = state["units"].setdefault(unit, {"enabled": False, "active": False})
            if op in ("enable", "disable"):
                entry["enabled"] = op == "enable"
            if op in ("start", "restart") or (op == "enable" and now):
                entry["active"] = True
            if op == "stop" or (op == "disable" and now):
                entry["active"] = False
    return 0


def _unit_known(state: dict[str, Any], unit: str) -> bool:
    # A unit exists once the package shipping it is installed, as on a real host.
    return unit in state["packages"] or unit in state["units"]


def modprobe(args: list[str]) -> int:
    with _host_state() as state:
        for module in (a for a in args if not a.startswith("-")):
            if module not in state["modules"]:
                state["modules"].append(module)
    return 0


def sysctl(args: list[str]) -> int:
    with _host_state() as state:
        state["sysctl_applied"] += 1
    print("* Applying simulated sysctl settings")
    return 0


def swapoff(args: list[str]) -> int:
    return 0


def hostname(args: list[str]) -> int:
    fqdn = os.environ.get("FAKEHOST_FQDN")
    if not fqdn:
        sys.exit("fakehost: FAKEHOST_FQDN is not set")
    print(fqdn if ("-f" in args or "--fqdn" in args) else fqdn.split(".")[0])
    return 0


COMMANDS: dict[str, Command] = {
    "apt-get": apt_get,
    "apt-mark": apt_mark,
    "systemctl": systemctl,
    "modprobe": modprobe,
    "sysctl": sysctl,
    "swapoff": swapoff,
    "hostname": hostname,
}
