"""A run's processes, recorded as they appear, so that what a run leaves behind is killed exactly.

Nothing else finds them all. Not the process group: Ansible's workers call setsid(). Not the
command lines: an operator's `tail -f` of a job's log names the job's directory just as
ansible-playbook does. Not a subreaper alone: after a kill -9 of the daemon and of the process
running ansible-runner, nobody is left that knows them (docs/contracts.md#ansible-workers).

So the process running ansible-runner (app.ansible.process) keeps a record while the run lives:
- it makes itself a child subreaper, so that a process whose parent exits (a task that
  daemonizes) is re-parented to it, not to init, and stays one of its descendants;
- a thread looks for its descendants every SAMPLE_S and appends each new one to RECORD_NAME in
  the run's private data dir as `pid starttime`, one write per line: a kill -9 of that process
  leaves out only what appeared in its last SAMPLE_S, and kill_leftovers still finds that below
  a recorded process, unless its parent has ended too. The start time (field 22 of
  /proc/PID/stat, in clock ticks since boot) tells a recorded process from a later one that was
  given the same pid.

kill_leftovers kills the recorded processes that still run (same pid, same start time) and
their descendants, and nothing else. Whatever ends a run, the process running ansible-runner
calls it, then the daemon, and the daemon's next start for a job a dead daemon left running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RECORD_NAME = "clusterm-processes"
# A look at a process in /proc costs about 12-20 us; the recorder reads only the processes that
# appeared since its last look (see Recorder.sample), so a host's thousand others cost it one
# listing of /proc every SAMPLE_S, not a thousand reads.
SAMPLE_S = 0.2
_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


@dataclass(frozen=True, slots=True)
class _Stat:
    ppid: int
    state: str  # "Z": a zombie, which holds nothing and is its parent's to reap
    starttime: int


def _stat(pid: int) -> _Stat | None:
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The fields after the parenthesised command name, which may itself hold spaces and ")":
    # [0] is field 3 (state), [1] field 4 (ppid), [19] field 22 (starttime).
    fields = text.rpartition(b")")[2].split()
    try:
        return _Stat(ppid=int(fields[1]), state=fields[0].decode(), starttime=int(fields[19]))
    except (IndexError, ValueError):
        return None


def _processes() -> dict[int, _Stat]:
    """Every process on the host by pid (those that end meanwhile are left out)."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            table[int(name)] = stat
    return table


def _with_descendants(roots: Iterable[int], table: dict[int, _Stat]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


class Recorder:
    """In the process running ansible-runner: record it and its descendants, from start() until
    stop(), in RECORD_NAME in `run_dir` (readable by the daemon's user only)."""

    def __init__(self, run_dir: Path, interval_s: float = SAMPLE_S) -> None:
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Appended to, never truncated: a record left by an earlier run of this dir may still
        # name processes that run. os.open's descriptor is not inherited across exec.
        self._fd = os.open(run_dir / RECORD_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._interval_s = interval_s
        self._listed: set[int] = set()  # every pid of the last look
        self._ours: set[int] = set()  # those of the last look that are this run's
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clusterm-recorder", daemon=True)

    def start(self) -> None:
        # A failure leaves orphans to init: the record, sampled meanwhile, still names most of
        # them, so the run goes on. The orphans this process adopts stay zombies when they end
        # (a pid each, until the run ends and this process exits): reaping them here could take
        # ansible-playbook's exit status from pexpect, which waits for it.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.sample()  # this process first, before it starts any other
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self.sample()  # what appeared since the last look
        os.close(self._fd)

    def sample(self) -> None:
        """Record the descendants that appeared since the last look.

        Only the pids new since then are read. A process listed then is still what it was: a
        pid is given again only after the kernel went through all the others (pid_max, at
        least 32768) since it was freed, not within SAMPLE_S. And one that was not this run's
        never becomes it: an orphan goes to its nearest subreaper among its own ancestors."""
        listed = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        fresh = {pid: stat for pid in listed - self._listed if (stat := _stat(pid)) is not None}
        ours = (self._ours & listed) | {os.getpid()}
        found = _with_descendants(ours, {**fresh, **dict.fromkeys(ours, _ROOT)}) - ours
        # This process first, at the first look (start()), before it starts any other.
        first = [] if os.getpid() in self._ours else [os.getpid()]
        for pid in first + sorted(found):
            start = fresh[pid].starttime if pid in fresh else _own_starttime()
            # One write() per line to a file opened for appending: whole lines, in the
            # kernel at once, so a kill -9 of this process the next moment loses none.
            os.write(self._fd, f"{pid} {start}\n".encode())
        self._listed, self._ours = listed, ours | found

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self.sample()


# A stand-in for a process already known to be the run's: only its pid matters to
# _with_descendants, as the parent of the fresh ones.
_ROOT = _Stat(ppid=0, state="R", starttime=0)


def _own_starttime() -> int:
    stat = _stat(os.getpid())
    if stat is None:  # /proc/self is always there on Linux
        raise RuntimeError("cannot read this process's own /proc entry")
    return stat.starttime


def recorded(run_dir: Path) -> list[tuple[int, int]]:
    """The record of `run_dir`'s processes, as (pid, starttime), in the order they appeared;
    the first is the process that ran ansible-runner."""
    try:
        text = (run_dir / RECORD_NAME).read_text()
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):  # only a torn last line could be malformed
            pid, starttime = line.split()
            entries.append((int(pid), int(starttime)))
    return entries


def running(run_dir: Path) -> set[int]:
    """The recorded processes of `run_dir` that still run, with all their descendants."""
    record = recorded(run_dir)
    if not record:
        return set()
    table = _processes()
    # A pid whose start time differs was given to another process since: it is not the run's.
    roots = [pid for pid, start in record if (s := table.get(pid)) and s.starttime == start]
    return {pid for pid in _with_descendants(roots, table) if table[pid].state != "Z"}


def kill_leftovers(run_dir: Path, wait_s: float = 2.0) -> int:
    """SIGKILL what runs of the run in `run_dir` (see above), except the calling process;
    wait up to `wait_s` for it to end; return how many processes were killed."""
    victims = running(run_dir) - {os.getpid()}
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(_alive(pid) for pid in victims):
        time.sleep(0.02)
    return len(victims)


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat.state != "Z"
