"""DEMO ONLY: a simulated host for clusterm's sandbox demo and its tests. Never use on a real node.

Many "nodes" share one machine, so each simulated node lives in its own root directory
(`FAKEHOST_ROOT`, the same directory the playbooks get as `clusterm_node_root`). The commands the
playbooks run that would change the real machine (apt-get, apt-mark, systemctl, modprobe, sysctl,
swapoff) are replaced by these functions, which only record what they were asked in that root, under
`var/lib/fakehost/`; the commands that read the host (dpkg-query -W, apt-mark showhold, systemctl
is-active/is-enabled, lsmod, swapon --show) answer from that record, as the real ones answer, and
write nothing. `hostname -f` answers `FAKEHOST_FQDN` so each node can have its own name.
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


# What every Debian/Ubuntu host has and the playbooks rely on (a swap line too: they turn it off);
# /etc/apt/keyrings since Debian 12 and Ubuntu 22.04.
SKELETON_DIRS = (
    "etc/modules-load.d",
    "etc/sysctl.d",
    "etc/apt/sources.list.d",
    "etc/apt/keyrings",
    "var/lib",
)
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
            # As on Debian, whatever the umask of whoever ran the first command (a mode that
            # differs would read as a change to the playbooks' `file` steps).
            (path / sub).chmod(0o755)
        (path / "etc/fstab").write_text(FSTAB)
    return path


def simulated_failure(name: str, args: list[str]) -> str | None:
    """The line of `var/lib/fakehost/fail` that makes this command fail, if any.

    Tests break one node on purpose with it: a line is a command name (`systemctl`: every systemctl
    fails) or a name and its first arguments (`systemctl restart containerd`: only that one).
    """
    path = node_root() / "var/lib/fakehost/fail"
    if not path.exists():
        return None
    invocation = [name, *args]
    for line in path.read_text().splitlines():
        words = line.split()
        if words and invocation[: len(words)] == words:
            return " ".join(words)
    return None


@contextlib.contextmanager
def locked_json(path: Path, default: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Read-modify-write a JSON file under an exclusive lock (nodes run commands at once).

    The file is written only when its content changed: a command that only reads (a probe the
    playbooks run in check mode too) leaves the simulated state byte for byte as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = path.read_text() if path.exists() else None
        data = json.loads(before) if before is not None else default
        yield data
        after = json.dumps(data, indent=1, sort_keys=True)
        if after != before:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(after)
            tmp.replace(path)


HOST_STATE = "var/lib/fakehost/host.json"


def _host_state() -> contextlib.AbstractContextManager[dict[str, Any]]:
    return locked_json(node_root() / HOST_STATE, _default_state())


def _default_state() -> dict[str, Any]:
    # No "swaps": until swapoff/swapon, the swaps are those /etc/fstab enables, as after a boot.
    return {"packages": {}, "held": [], "units": {}, "modules": [], "sysctl_applied": 0}


def read_state() -> dict[str, Any]:
    """The host's state for a command that only reads it: no lock, no file created.

    The writers replace the file atomically, so a reader sees the state before or after a change.
    """
    path = node_root() / HOST_STATE
    return {**_default_state(), **(json.loads(path.read_text()) if path.exists() else {})}


def installed(package: str) -> bool:
    return package in read_state()["packages"]


def unit_active(unit: str) -> bool:
    return bool(read_state()["units"].get(unit, {}).get("active"))


def _options(args: list[str]) -> tuple[list[str], set[str]]:
    return [a for a in args if not a.startswith("-")], {a for a in args if a.startswith("-")}


HELD_CHANGED = "E: Held packages were changed and -y was used without --allow-change-held-packages."


def apt_get(args: list[str]) -> int:
    words, opts = _options(args)
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
            return 0
        # apt refuses to remove a held package unless told to (the hold is what keeps a package).
        held = [p for p in packages if p in state["held"] and p in state["packages"]]
        if held and "--allow-change-held-packages" not in opts:
            print(f"The following held packages will be changed:\n  {' '.join(held)}")
            print(HELD_CHANGED, file=sys.stderr)
            return 100
        gone = [p for p in packages if state["packages"].pop(p, None)]
        state["held"] = [p for p in state["held"] if p not in gone]
        print(f"0 newly installed, {len(gone)} to remove (simulated)")
    return 0


def apt_mark(args: list[str]) -> int:
    if args[:1] == ["showhold"]:
        # Sorted, one a line; with names, only those of them that are held.
        held = read_state()["held"]
        for p in sorted(p for p in held if not args[1:] or p in args[1:]):
            print(p)
        return 0
    if not args or args[0] not in ("hold", "unhold"):
        print("E: unsupported apt-mark operation (simulated)", file=sys.stderr)
        return 100
    with _host_state() as state:
        for p in args[1:]:
            if p not in state["packages"]:
                print(f"E: Unable to locate package {p}", file=sys.stderr)
                return 100
            if args[0] == "hold" and p not in state["held"]:
                state["held"].append(p)
                print(f"{p} set on hold.")
            elif args[0] == "hold":
                print(f"{p} was already set on hold.")
            elif p in state["held"]:
                state["held"].remove(p)
                print(f"Canceled hold on {p}.")
            else:
                print(f"{p} was already not on hold.")
    return 0


def dpkg_query(args: list[str]) -> int:
    """`dpkg-query -W [-f=FORMAT] PACKAGE...` (also --show, --showformat): ${Package}, ${Status},
    ${Version}, ${db:Status-Abbrev}; exit 1 when a package is unknown, as dpkg-query does."""
    fmt, packages, show, it = "${Package}\t${Version}\n", [], False, iter(args)
    for arg in it:
        if arg in ("-W", "--show"):
            show = True
        elif arg in ("-f", "--showformat"):
            fmt = next(it, "")
        elif arg.startswith(("-f=", "--showformat=")):
            fmt = arg.partition("=")[2]
        elif arg.startswith("-f"):
            fmt = arg[2:]
        elif arg.startswith("-"):
            print(f"dpkg-query: unsupported option {arg} (simulated)", file=sys.stderr)
            return 2
        else:
            packages.append(arg)
    if not show:
        print("dpkg-query: only -W/--show is simulated", file=sys.stderr)
        return 2
    state, rc = read_state(), 0
    fmt = fmt.replace("\\n", "\n").replace("\\t", "\t")
    for p in packages:
        if p not in state["packages"]:
            print(f"dpkg-query: no packages found matching {p}", file=sys.stderr)
            rc = 1
            continue
        want = "hold" if p in state["held"] else "install"
        fields = {
            "Package": p,
            "binary:Package": p,
            "Version": state["packages"][p],
            "Status": f"{want} ok installed",
            "db:Status-Abbrev": f"{want[0]}i ",
        }
        out = fmt
        for key, value in fields.items():
            out = out.replace("${" + key + "}", value)
        sys.stdout.write(out)
    return rc


def systemctl(args: list[str]) -> int:
    words, opts = _options(args)
    now, quiet = "--now" in opts, bool(opts & {"-q", "--quiet"})
    if not words:
        return 0
    op, units = words[0], [u.removesuffix(".service") for u in words[1:]]
    if op == "daemon-reload":
        return 0
    if op in ("is-active", "is-enabled"):
        return _unit_query(op, units, quiet=quiet)
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
            if op == "restart":
                entry["restarts"] = entry.get("restarts", 0) + 1
    return 0


def _unit_query(op: str, units: list[str], *, quiet: bool) -> int:
    """`systemctl is-active|is-enabled UNIT...`: a line per unit; exit 0 when any of them is
    active (enabled), else 3 (1), as systemctl does. An unknown unit is "inactive", and has no
    unit file state."""
    state, hit = read_state(), False
    for unit in units:
        entry = state["units"].get(unit, {"enabled": False, "active": False})
        if op == "is-active":
            word = "active" if entry["active"] else "inactive"
        elif _unit_known(state, unit):
            word = "enabled" if entry["enabled"] else "disabled"
        else:
            print(
                f"Failed to get unit file state for {unit}.service: No such file or directory",
                file=sys.stderr,
            )
            continue
        hit = hit or word in ("active", "enabled")
        if not quiet:
            print(word)
    return 0 if hit else (3 if op == "is-active" else 1)


def _unit_known(state: dict[str, Any], unit: str) -> bool:
    # A unit exists once the package shipping it is installed, as on a real host.
    return unit in state["packages"] or unit in state["units"]


def modprobe(args: list[str]) -> int:
    with _host_state() as state:
        for module in (a for a in args if not a.startswith("-")):
            if module not in state["modules"]:
                state["modules"].append(module)
    return 0


def lsmod(args: list[str]) -> int:
    """The loaded modules (what modprobe loaded since the root was laid out), as lsmod prints
    them: a header, then one module a line."""
    print("Module                  Size  Used by")
    for module in read_state()["modules"]:
        print(f"{module:<19} {32768:>9}  0")
    return 0


def sysctl(args: list[str]) -> int:
    with _host_state() as state:
        state["sysctl_applied"] += 1
    print("* Applying simulated sysctl settings")
    return 0


def _fstab_swaps() -> list[str]:
    fstab = node_root() / "etc/fstab"
    swaps = []
    for line in fstab.read_text().splitlines() if fstab.exists() else []:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 3 and fields[2] == "swap":
            swaps.append(fields[0])
    return swaps


def active_swaps() -> list[str]:
    """The swap areas in use: those of /etc/fstab (as after a boot) until swapoff/swapon."""
    swaps = read_state().get("swaps")
    return list(swaps) if swaps is not None else _fstab_swaps()


def swapoff(args: list[str]) -> int:
    words, opts = _options(args)
    with _host_state() as state:
        current = state["swaps"] if "swaps" in state else _fstab_swaps()
        state["swaps"] = [] if opts & {"-a", "--all"} else [s for s in current if s not in words]
    return 0


def swapon(args: list[str]) -> int:
    """`swapon --show [--noheadings]` lists the swap areas in use; `swapon -a` enables fstab's."""
    words, opts = _options(args)
    if opts & {"-a", "--all"} or words:
        with _host_state() as state:
            current = state["swaps"] if "swaps" in state else _fstab_swaps()
            added = _fstab_swaps() if opts & {"-a", "--all"} else words
            state["swaps"] = current + [s for s in added if s not in current]
        return 0
    swaps = active_swaps()
    if swaps and "--noheadings" not in opts:
        print("NAME      TYPE SIZE USED PRIO")
    for swap in swaps:
        print(f"{swap} file   2G   0B   -2")
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
    "dpkg-query": dpkg_query,
    "systemctl": systemctl,
    "modprobe": modprobe,
    "lsmod": lsmod,
    "sysctl": sysctl,
    "swapoff": swapoff,
    "swapon": swapon,
    "hostname": hostname,
}
