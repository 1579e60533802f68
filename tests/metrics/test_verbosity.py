"""Verbosity changes sent (clusterm_verbosity_changes_total, this process) and the reverts owed
(clusterm_verbosity_reverts_pending, the database), against emulated components."""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

from fastapi.testclient import TestClient

from app.verbosity.fanout import FAILED, SUCCEEDED
from app.verbosity.registry import DEFAULTS
from tests.metrics.conftest import Samples, scrape, value

# The verbosity tests' fixtures: a CA, emulated components, settings pointing at them.
from tests.verbosity.conftest import (  # noqa: F401
    TOKEN,
    emulators,
    pki,
    register,
    settings,
    settings_overrides,
)
from tests.verbosity.emulator import Emulator, free_port


def changes(samples: Samples, result: str) -> float:
    return value(samples, "clusterm_verbosity_changes_total", component="kubelet", result=result)


def test_every_component_and_result_is_reported_from_the_first_scrape(admin: TestClient) -> None:
    samples = scrape(admin)["clusterm_verbosity_changes_total"]
    reported = [(have["component"], have["result"]) for have, _ in samples]
    # One series for each, whatever this process sent before (0 until the first), and no other:
    # the components are a closed set.
    assert sorted(reported) == sorted(product(DEFAULTS, (SUCCEEDED, FAILED)))


def test_changes_sent_and_reverts_owed(
    admin: TestClient,
    emulators: Callable[..., Emulator],  # noqa: F811  (the fixture imported above)
) -> None:
    emulator = emulators()
    ok = emulator.add("n1", token=TOKEN)
    emulator.start()
    register(admin, "n1", {"kubelet": ok.port})
    register(admin, "n2", {"kubelet": free_port()})  # nobody listens there
    before = scrape(admin)
    assert value(before, "clusterm_verbosity_reverts_pending") == 0

    body = {"component": "kubelet", "nodes": ["n1", "n2"], "level": 5, "ttl": "1h"}
    report = admin.post("/verbosity", json=body)
    assert report.status_code == 207, report.text
    assert (report.json()["succeeded"], report.json()["failed"]) == (1, 1)
    after = scrape(admin)

    assert changes(after, "succeeded") - changes(before, "succeeded") == 1
    assert changes(after, "failed") - changes(before, "failed") == 1
    owed = [level for level in admin.get("/verbosity").json() if level["reverts_at"]]
    assert len(owed) == 1
    assert value(after, "clusterm_verbosity_reverts_pending") == 1
