"""The revert worker as a background component: stopped with the background group it runs no
revert, and started again it runs the reverts that came due meanwhile (see app.runtime)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi.testclient import TestClient

from app.db import utcnow
from app.runtime import runtime_of
from tests.polling import wait_until
from tests.verbosity.emulator import Emulator
from tests.verbosity.test_reverts import change, known, setup_nodes


def test_reverts_due_while_the_background_group_is_stopped_run_once_it_starts_again(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    nodes = setup_nodes(admin, emulators, "n1")
    runtime = runtime_of(admin.app)
    portal = admin.portal
    assert portal is not None
    for level in (5, 6):
        portal.call(runtime.background.stop)
        report = change(admin, ["n1"], level, "1s")  # a change is a request: it still runs
        assert nodes["n1"].level == level
        due = dt.datetime.fromisoformat(report["reverts_at"])
        wait_until(
            lambda: utcnow() > due + dt.timedelta(seconds=1),  # noqa: B023 (called in the loop)
            timeout_s=30,
            what="the revert to come due",
        )
        # Due, and not run: nothing runs reverts while the group is stopped.
        assert nodes["n1"].level == level
        assert known(admin)["n1"]["reverts_at"] is not None
        portal.call(runtime.background.start)
        wait_until(lambda: nodes["n1"].level == 2, timeout_s=30, what="n1 reverted to level 2")
        wait_until(
            lambda: known(admin)["n1"]["reverts_at"] is None,
            timeout_s=30,
            what="the revert recorded",
        )
