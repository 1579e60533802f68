"""The one way tests wait for something that happens in another thread, process or daemon.

`wait_until` calls `check` until it returns a truthy value, and returns that value, so a test can
wait for a job and use the job it got. The timeout is an upper bound on a wait that normally ends
far sooner, never a measurement: nothing asserts how long a wait took. When the time is up, the
AssertionError names what was awaited and the last value seen, which is what a failing run needs
to be understood.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_SHOWN_CHARS = 500  # of the last value, in the failure message


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> T:
    """The first truthy value `check` returns; AssertionError after `timeout_s` without one."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            last = repr(value)
            if len(last) > _SHOWN_CHARS:
                last = last[:_SHOWN_CHARS] + "..."
            raise AssertionError(f"{what}: not within {timeout_s} s (last seen: {last})")
        time.sleep(interval_s)
