"""Run a playbook in a child process, with app.ansible.runner on the other side of a pipe.

Why not in the daemon's own thread, as before:
- memory: ansible-runner holds each event whole while it reads it. A task whose result prints
  30 MB took 430 MB in the process running ansible-runner; in the daemon that is unbounded, and
  an out-of-memory kill would take the API down with it. Here the child may die; the daemon only
  ever holds what the job's log buffer keeps, plus the batch of output in flight.
- CPU: ansible-runner's read loop spends about 100 us of Python per line of output. In the daemon
  that competes for the GIL with every request; here it runs beside it, on another core.

The child is forked from a forkserver that has already imported ansible-runner, so a job starts
in milliseconds, not the 0.3 s of a fresh import. The forkserver, not the daemon, is the one
forking: the daemon runs threads, and fork() of a threaded process can copy a held lock. The
runtime starts it with the daemon (start_forkserver); run_playbook starts it if nobody has.

Processes: runner's cancel kills ansible-playbook's process group, which is not all of a job
(Ansible's workers call setsid(): see docs/contracts.md#ansible-workers). The child records the
run's processes as they appear (app.ansible.leftovers); whatever ends a run, the child and then
the daemon kill exactly what is left of them.

Messages, child to daemon: ("out", text) with whole lines, batched, ("tasks", [TaskResult, ...])
batched the same way (a 200-host, 50-task job ends 10,000 tasks), ("report", (task, res)),
("result", RunResult) or ("error", message); daemon to child: "cancel". When the daemon dies, the
child reads end-of-file on its pipe and cancels the run, so no playbook outlives its daemon.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from typing import Any

from app.ansible import leftovers, runner
from app.ansible.spec import Priority, RunResult, RunSpec, RunStatus, TaskResult

# A huge event is split at line ends into chunks of at most this much, and a batch is sent once
# it holds this much: the daemon never holds more than about two chunks besides its log buffer.
CHUNK_CHARS = 1 << 20
BATCH_S = 0.05  # and a batch goes out at least this often while the job prints
TASKS_BATCH = 1000  # task results a batch holds at most
POLL_S = 0.1

_context = multiprocessing.get_context("forkserver")


def start_forkserver() -> None:
    """Start the process the children are forked from, with ansible-runner imported; idempotent.

    Not at import: a module that starts a process when imported would start it in every tool
    and test that imports it."""
    # The preload is read when the server starts: it has no effect on one already running.
    _context.set_forkserver_preload(["app.ansible.runner"])
    forkserver.ensure_running()


def run_playbook(
    spec: RunSpec,
    *,
    on_output: Callable[[str], None],
    should_cancel: Callable[[], bool],
    on_report: Callable[[str, dict[str, Any]], None] | None = None,
    on_tasks: Callable[[list[TaskResult]], None] | None = None,
) -> RunResult:
    """runner.run_playbook, run in a child process; the callbacks run in the calling thread.

    on_report(type, report) hears of the run's reports (runner.report_of) when
    spec.wants_reports, and must be given then."""
    if spec.wants_reports and on_report is None:
        raise ValueError("a run that wants reports needs on_report")
    start_forkserver()
    ours, theirs = _context.Pipe(duplex=True)
    child = _context.Process(
        target=_child_main,
        args=(theirs, spec),
        name="clusterm-runner",
        daemon=True,
    )
    child.start()
    theirs.close()  # the child's end: only the child may hold it, so its death reads as EOF
    result: RunResult | None = None
    error: str | None = None
    cancel_sent = False
    try:
        while True:
            if not cancel_sent and should_cancel():
                _send_quietly(ours, "cancel")
                cancel_sent = True
            if not ours.poll(POLL_S):
                continue
            try:
                kind, payload = ours.recv()
            except EOFError:
                break
            if kind == "out":
                on_output(payload)
            elif kind == "tasks" and on_tasks is not None:
                on_tasks(payload)
            elif kind == "report" and on_report is not None:
                on_report(*payload)
            elif kind == "result":
                result = payload
            elif kind == "error":
                error = payload
    finally:
        ours.close()
        child.join(5)
        if child.is_alive():  # it cannot be waited for: it must not run on unseen
            child.kill()
            child.join()
    if result is not None:
        return result
    if error is None:
        error = f"it ended without a result ({_describe_exit(child.exitcode)})"
    error = f"the process running ansible-runner failed: {error}"
    on_output(f"[clusterm: {error}]")
    return RunResult(status=RunStatus.FAILED, rc=None, error=error)


def _describe_exit(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exit code {code}"
    name = signal.Signals(-code).name
    hint = ": killed, perhaps by the kernel for lack of memory" if code == -signal.SIGKILL else ""
    return f"signal {name}{hint}"


def _send_quietly(conn: Connection, message: object) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):  # the child has gone: the loop sees EOF
        conn.send(message)


def _child_main(conn: Connection, spec: RunSpec) -> None:
    # Ctrl-C in the daemon's terminal reaches this whole process group: the daemon decides what
    # happens to the job (it cancels it on shutdown), not the signal
    # (see docs/contracts.md#runner-signal-handlers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    refused = lower_priority(spec.priority)
    pipe = _ChildPipe(conn)
    if refused:
        pipe.on_output(refused)
    try:
        recorder = leftovers.Recorder(spec.private_data_dir)
        recorder.start()
        try:
            result = runner.run_playbook(
                spec,
                on_output=pipe.on_output,
                should_cancel=pipe.should_cancel,
                on_report=pipe.on_report if spec.wants_reports else None,
                on_task=pipe.on_task,
            )
        finally:
            recorder.stop()
        pipe.send(("result", result))
    except Exception as exc:  # whatever it is, the daemon must hear of it, not a bare EOF
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        # Here too, not only in the daemon: after a kill -9 of the daemon nobody else would.
        leftovers.kill_leftovers(spec.private_data_dir)
        conn.close()


def lower_priority(priority: Priority) -> str | None:
    """Put this process, and so everything it starts, at `priority` (docs/jobs.md#priority).

    Everything the run starts inherits it, across fork, exec and setsid: a job that keeps every
    core busy (Ansible's main process and its forks) yields them to the daemon's requests. Where
    the kernel's autogroups make each session a group of its own, a niceness is weighed only
    within the session, and the sessions themselves as normal ones: clusterm's callback lowers
    each session the job makes (app/ansible/callback/awx_display.py keep_priority_in_sessions).

    Returns None, or the line for the job's log that says the kernel refused: a sandbox (a
    seccomp profile) may forbid the call, and a job that runs at the daemon's priority is
    better than a job that fails for it."""
    try:
        if priority == Priority.IDLE:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif priority == Priority.LOW:
            os.nice(10)
    except OSError as exc:
        return (
            f"[clusterm: the kernel refused job_priority {priority.value} "
            f"({exc.strerror or exc}); this job runs at the daemon's own priority]"
        )
    return None


class _ChildPipe:
    """The child's end: output sent in batches, cancel and the daemon's death noticed.

    Batches (every BATCH_S, or CHUNK_CHARS) rather than a message per event: a job printing
    1,000 lines a second would otherwise wake the daemon's job thread 1,000 times a second, and
    each wake-up takes the GIL from the requests being served.
    """

    def __init__(self, conn: Connection, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.clock = clock
        self.cancel = False
        self.pending: list[str] = []
        self.pending_chars = 0
        self.tasks: list[TaskResult] = []
        self.flushed_at = clock()

    def on_output(self, text: str) -> None:
        for chunk in split_lines(text, CHUNK_CHARS):
            self.pending.append(chunk)
            self.pending_chars += len(chunk)
            if self.pending_chars >= CHUNK_CHARS:
                self.flush()
        if self.clock() - self.flushed_at >= BATCH_S:
            self.flush()

    def on_task(self, result: TaskResult) -> None:
        self.tasks.append(result)
        if len(self.tasks) >= TASKS_BATCH or self.clock() - self.flushed_at >= BATCH_S:
            self.flush()

    def on_report(self, kind: str, report: dict[str, Any]) -> None:
        self.send(("report", (kind, report)))

    def should_cancel(self) -> bool:
        # runner asks after every read, at least every pexpect timeout: a quiet job's last lines
        # wait no longer than that (see docs/contracts.md#runner-cancel-latency).
        self.flush()
        try:
            while not self.cancel and self.conn.poll():
                self.cancel = self.conn.recv() == "cancel"
        except (EOFError, OSError):
            self.cancel = True  # the daemon is gone: nobody would see this job's end
        return self.cancel

    def flush(self) -> None:
        self.flushed_at = self.clock()
        if self.pending:
            # Each chunk is whole lines, so joined by a line end they are the same lines.
            text, self.pending, self.pending_chars = "\n".join(self.pending), [], 0
            self._send(("out", text))
        if self.tasks:
            tasks, self.tasks = self.tasks, []
            self._send(("tasks", tasks))

    def send(self, message: tuple[str, Any]) -> None:
        self.flush()  # output first: the daemon must have every line before the result
        self._send(message)

    def _send(self, message: tuple[str, Any]) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, OSError):
            self.cancel = True


def split_lines(text: str, size: int) -> Iterator[str]:
    """`text` in pieces of at most `size` characters, each made of whole lines.

    A line longer than `size` is cut there, and says so, as the log buffer does with long lines.
    """
    start = 0
    while True:
        if len(text) - start <= size:
            yield text[start:]  # "" when the text ends with a line end: that empty line counts
            return
        cut = text.rfind("\n", start, start + size + 1)
        if cut < 0:
            yield f"{text[start : start + size]} [clusterm: line cut at {size} chars]"
            cut = text.find("\n", start + size)
            if cut < 0:
                return
        else:
            yield text[start:cut].removesuffix("\r")
        start = cut + 1
