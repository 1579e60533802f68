"""ansible-runner's display callback with three of its costs taken out
(docs/contracts.md#runner-display-callback).

ansible-playbook loads this file as its stdout callback `awx_display`: app.ansible.runner puts
this directory before ansible-runner's own in ANSIBLE_CALLBACK_PLUGINS, and Ansible takes the
first plugin of a name. The daemon never imports it. It runs ansible-runner's callback module
itself (loaded from ansible-runner's package, so the events, their data and the tokens runner
reads stay runner's own) and then changes, in ansible-playbook's main process only:

- `Display.debug`: runner wraps every Display method to mark the event it may print, and
  Ansible's strategy calls `debug` about nine times per task and host; with debug off (Ansible's
  default) it prints nothing, yet each call went through runner's wrapper. Here it returns at
  once unless debug is on, as Ansible's own `debug` does.
- `Display.display`: runner's wrapper binds the call's arguments by signature on every call, to
  look for `log_only` and `stderr`; inside an event (every line a callback prints) it needs
  neither. Here a call inside an event goes straight to Ansible's display, under the same lock.
- the partial event file: runner's callback creates a file for each event's data, which runner's
  read loop opens, reads and deletes when the event's last token reaches it. Creating a file is
  the filesystem's costliest small operation (0.03 to 1 ms of kernel CPU on one ext4 disk,
  by directory: docs/contracts.md#runner-display-callback), paid about twice per task and host
  in the process a job waits on. Here, when clusterm names a journal directory
  (CLUSTERM_EVENT_JOURNAL), each event's data is one line appended to a segment file instead,
  and clusterm reads it back (app.ansible.eventjournal); runner finds no partial file and hands
  the event over with its lines as before.

Should an ansible-runner build its callback otherwise, none of the three is made: runner's
callback runs as it is, and a warning at the top of the job's log says so.

Being the first of clusterm's code in ansible-playbook's process, it also keeps the job's CPU
priority in the sessions ansible-playbook runs in and starts (`keep_priority_in_sessions`,
docs/jobs.md#priority).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from typing import Any

DOCUMENTATION = """
    callback: awx_display
    short_description: ansible-runner's playbook event dispatcher, for clusterm
    description:
        - ansible-runner's awx_display callback with three of its costs taken out.
    type: stdout
    extends_documentation_fragment:
      - default_callback
    requirements:
      - Set as stdout in config
"""


_RUNNER_MODULE = "_clusterm_runner_awx_display"
# The journal's directory, set by clusterm (app.ansible.eventjournal.JOURNAL_ENV).
JOURNAL_ENV = "CLUSTERM_EVENT_JOURNAL"


def _load_runner_callback() -> Any:
    """runner's callback module, run once per process: it wraps Ansible's Display as it loads."""
    if _RUNNER_MODULE in sys.modules:
        return sys.modules[_RUNNER_MODULE]
    spec = importlib.util.find_spec("ansible_runner")
    if spec is None or spec.origin is None:
        raise ImportError("ansible-runner is not installed beside this ansible-playbook")
    path = os.path.join(
        os.path.dirname(spec.origin), "display_callback", "callback", "awx_display.py"
    )
    module_spec = importlib.util.spec_from_file_location(_RUNNER_MODULE, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load ansible-runner's display callback from {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module


_runner = _load_runner_callback()
# Imported by name: to a type checker run from the repository, `ansible` is its playbook folder.
_constants = importlib.import_module("ansible.constants")


class EventJournal:
    """Where an event's data goes for clusterm (in place of runner's partial file): one JSON
    line per event, appended to the segment files of a directory of clusterm's, each closed at
    about SEGMENT_BYTES; app.ansible.eventjournal reads them back, in the runner's read loop.

    A file is opened per segment, not created per event (see above). runner's callback calls
    `set` under Ansible's display lock, from whichever of the main process's threads sends the
    event, and prints the event's first token only after `set` has returned."""

    SEGMENT_BYTES = 1 << 20

    def __init__(self, directory: str, encoder: type[json.JSONEncoder]) -> None:
        self.directory = directory
        self.encoder = encoder  # runner's: it writes Ansible's vault and date values
        self.segment = 0
        self.size = 0
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.fd = self._open()

    def _open(self) -> int:
        path = os.path.join(self.directory, segment_name(self.segment))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        return os.open(path, flags, 0o600)

    def set(self, key: str, value: Any) -> None:
        # json.dumps escapes every newline inside a string: one event, one line.
        data = json.dumps(value, cls=self.encoder).encode("utf-8") + b"\n"
        _write_all(self.fd, data)
        self.size += len(data)
        if self.size >= self.SEGMENT_BYTES:
            # The next segment is created only once this one is whole: the reader's sign that
            # it may read this one to its end and delete it.
            os.close(self.fd)
            self.segment += 1
            self.size = 0
            self.fd = self._open()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def segment_name(number: int) -> str:
    """The journal's file names; app.ansible.eventjournal spells them the same way."""
    return f"{number:08d}.jsonl"


def _quiet_debug(wrapped: Any) -> Any:
    def debug(self: Any, *args: Any, **kwargs: Any) -> None:
        if _constants.DEFAULT_DEBUG:
            wrapped(self, *args, **kwargs)

    debug.__wrapped__ = wrapped  # type: ignore[attr-defined]
    return debug


def _direct_display(wrapped: Any) -> Any:
    display = wrapped.__wrapped__  # Ansible's own Display.display
    in_fork = _runner.multiprocessing_context.parent_process
    context = _runner.event_context
    lock, get_local, get_global = context.display_lock, context.get_local, context.get_global

    def direct(*args: Any, **kwargs: Any) -> Any:
        local = get_local()
        uuid = local["uuid"] if "uuid" in local else get_global().get("uuid")
        if not uuid:
            return wrapped(*args, **kwargs)  # outside an event: runner's own wrapper
        if in_fork() is not None:
            return display(*args, **kwargs)
        with lock:
            return display(*args, **kwargs)

    direct.__wrapped__ = display  # type: ignore[attr-defined]
    return direct


def _take_out_costs() -> None:
    """The three changes, once per process (as runner's own wrapping): all of them or none."""
    if getattr(_runner, "clusterm_lean", False):
        return
    # Everything they rest on is looked up first: a missing part raises before any change.
    display = _direct_display(_runner.Display.display)
    debug = _quiet_debug(_runner.Display.debug)
    context = _runner.event_context
    encoder = _runner.AnsibleJSONEncoderLocal
    journal = os.environ.get(JOURNAL_ENV)
    if journal:
        context.cache = EventJournal(journal, encoder)
    _runner.Display.display = display
    _runner.Display.debug = debug
    _runner.clusterm_lean = True


try:
    _take_out_costs()
except (AttributeError, OSError) as exc:
    # Another ansible-runner than the one this was written against (AttributeError), or a
    # journal that cannot be opened: runner's callback runs as it is, only slower, and the
    # job's log says so.
    importlib.import_module("ansible.utils.display").Display().warning(
        f"clusterm's awx_display: {exc}; ansible-runner's display callback runs unchanged"
    )


# --- the job's priority in ansible-playbook's sessions --------------------------------------

# Where the kernel's autogroups are used, each session is a scheduling group of its own, weighed
# by the niceness written here (docs/jobs.md#priority).
AUTOGROUP = "/proc/self/autogroup"


def session_niceness() -> int | None:
    """The niceness a session of this job's gets: from the priority clusterm gave the job's
    processes (app/ansible/process.py `lower_priority`), inherited by this one. None at the
    normal priority: nothing to lower."""
    if os.sched_getscheduler(0) == os.SCHED_IDLE:
        return 19  # the lowest a group can be: 1.5 % of a normal group's weight
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    return nice if nice > 0 else None


def lower_session(niceness: int) -> None:
    """Weigh the session this process leads as `niceness`, where the kernel lets it.

    Only a session this job made: one led by another process could be the daemon's own. Best
    effort by design, the job runs either way: without autogroups there is no file; without
    CAP_SYS_ADMIN the kernel takes such a write ten times a second machine-wide and answers
    EAGAIN to the rest; positive values are never refused for lack of privilege."""
    if os.getsid(0) != os.getpid():
        return
    with contextlib.suppress(OSError):
        fd = os.open(AUTOGROUP, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(niceness).encode())
        finally:
            os.close(fd)


def keep_priority_in_sessions() -> None:
    """ansible-playbook runs in the session ansible-runner's pty made, and each of its forks
    calls os.setsid() (docs/contracts.md#ansible-workers): where autogroups are on, each of those
    is a group weighed as a normal one whatever its processes' policy, and a job's forks took
    the cores from the daemon's requests. So this session, and every session a fork of this
    process makes with os.setsid, is weighed at the job's priority."""
    niceness = session_niceness()
    if niceness is None or getattr(os.setsid, "clusterm_niceness", None) is not None:
        return
    lower_session(niceness)
    setsid = os.setsid

    def setsid_at_job_priority() -> None:
        setsid()
        lower_session(niceness)

    setsid_at_job_priority.clusterm_niceness = niceness  # type: ignore[attr-defined]
    os.setsid = setsid_at_job_priority


keep_priority_in_sessions()


_RunnersCallback: Any = _runner.CallbackModule


class CallbackModule(_RunnersCallback):  # type: ignore[misc]
    """ansible-runner's callback itself; defined here so that Ansible's "Loading callback plugin"
    line (verbosity 4) names this file."""
