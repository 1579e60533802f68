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
- the partial event file: runner's callback writes each event's data to a `.tmp` file and renames
  it, after checking that the directory exists. runner reads the file only once the event's
  last token has reached it, and the callback prints the first token after the file is closed,
  so the rename protects no reader of runner's; here the file is written once, in place.

Should an ansible-runner build its callback otherwise, none of the three is made: runner's
callback runs as it is, and a warning at the top of the job's log says so.
"""

from __future__ import annotations

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


class PartialEventFile:
    """Where runner's callback puts an event's data for runner's read loop: one file per event,
    `<data dir>/job_events/<uuid>-partial.json`, written once (see above)."""

    def __init__(self, data_dir: str, encoder: type[json.JSONEncoder]) -> None:
        self.directory = os.path.join(data_dir, "job_events")
        self.encoder = encoder  # runner's: it writes Ansible's vault and date values
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def set(self, key: str, value: Any) -> None:
        uuid = key[len(":1:ev-") :]
        data = json.dumps(value, cls=self.encoder).encode("utf-8")
        path = os.path.join(self.directory, f"{uuid}-partial.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


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
    data_dir = os.environ.get("AWX_ISOLATED_DATA_DIR")
    cache = PartialEventFile(data_dir, _runner.AnsibleJSONEncoderLocal) if data_dir else None
    context = _runner.event_context
    if cache is not None:
        context.cache = cache
    _runner.Display.display = display
    _runner.Display.debug = debug
    _runner.clusterm_lean = True


try:
    _take_out_costs()
except AttributeError as exc:
    # Another ansible-runner than the one this was written against: its callback runs as it
    # is, only slower, and the job's log says so.
    importlib.import_module("ansible.utils.display").Display().warning(
        "clusterm's awx_display: ansible-runner's display callback is not the one it knows "
        f"({exc}); it runs unchanged"
    )


_RunnersCallback: Any = _runner.CallbackModule


class CallbackModule(_RunnersCallback):  # type: ignore[misc]
    """ansible-runner's callback itself; defined here so that Ansible's "Loading callback plugin"
    line (verbosity 4) names this file."""
