"""clusterm's own `/debug/flags/v`: Kubernetes' contract, plus reading it back and a ttl."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.polling import wait_until
from tests.verbosity.conftest import TOKEN, register
from tests.verbosity.emulator import Emulator

OWN = "/debug/flags/v"


def test_put_follows_the_kubernetes_contract(admin: TestClient) -> None:
    r = admin.put(OWN, content=b"4")
    assert r.status_code == 200
    assert r.content == b"successfully set klog.logging.verbosity to 4\n"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["x-content-type-options"] == "nosniff"
    r = admin.put(OWN, content=b"-1")
    assert r.status_code == 400
    assert r.content == b'strconv.ParseUint: parsing "-1": invalid syntax\n'
    assert r.headers["content-type"] == "text/plain"
    for method in ("POST", "PATCH", "DELETE"):
        r = admin.request(method, OWN, content=b"4")
        assert r.status_code == 406
        assert r.content == b"unsupported http method\n"
    assert admin.get(OWN).text == "4\n"


def test_get_shows_the_level_to_a_viewer_and_put_needs_an_operator(
    client: TestClient, as_role: Callable[[str], dict[str, str]]
) -> None:
    viewer, operator = as_role("viewer"), as_role("operator")
    assert client.get(OWN, headers=viewer).text == "2\n"  # log_level info is V2
    assert client.put(OWN, content=b"3", headers=viewer).status_code == 403
    assert client.put(OWN, content=b"3", headers=operator).status_code == 200
    state = client.get(OWN, headers={**viewer, "Accept": "application/json"}).json()
    assert state["level"] == 3
    assert state["baseline_level"] == 2
    assert state["set_by"] == "operator"
    assert state["reverts_at"] is not None  # the default ttl applies


def test_ttl_reverts_by_itself_and_is_audited(admin: TestClient) -> None:
    assert admin.put(OWN, content=b"5", params={"ttl": "1s"}).status_code == 200
    assert admin.get(OWN).text == "5\n"
    wait_until(
        lambda: admin.get(OWN).text == "2\n", timeout_s=10, what="clusterm's own level back at 2"
    )

    def timeline() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = admin.get(
            "/info/timeline", params={"action": "verbosity"}
        ).json()["items"]
        return items

    # The revert is recorded just after the level drops (a task of its own).
    wait_until(
        lambda: any(e["reason"] == "VerbosityReverted" for e in timeline()),
        timeout_s=10,
        what="a VerbosityReverted event",
    )
    events = timeline()
    reasons = [(e["reason"], e["from_state"], e["to_state"], e["actor"]) for e in events]
    assert ("VerbosityReverted", "5", "2", "clusterm") in reasons
    assert ("VerbositySet", "2", "5", "admin") in reasons
    assert all(e["details"]["component"] == "clusterm" for e in events)


def test_bad_ttl_is_422_and_changes_nothing(admin: TestClient) -> None:
    for ttl, words in (("soon", "not a duration"), ("48h", "longer than the maximum 24h")):
        r = admin.put(OWN, content=b"4", params={"ttl": ttl})
        assert r.status_code == 422
        assert words in r.json()["message"]
    assert admin.get(OWN).text == "2\n"


def test_the_level_really_changes_what_clusterm_logs(
    admin: TestClient, emulators: Callable[..., Emulator], caplog: pytest.LogCaptureFixture
) -> None:
    emulator = emulators()
    endpoint = emulator.add("n1", token=TOKEN)
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    caplog.set_level(logging.DEBUG, logger="")  # the handler takes all; the loggers decide

    def change_kubelet() -> list[logging.LogRecord]:
        caplog.clear()
        assert admin.put("/proxy/kubelet/n1/debug/flags/v", content=b"3").status_code == 200
        return [r for r in caplog.records if r.name in ("clusterm.verbosity", "httpx")]

    assert admin.put(OWN, content=b"0").status_code == 200
    assert change_kubelet() == []  # V0: nothing but warnings and errors
    assert admin.put(OWN, content=b"2").status_code == 200
    records = change_kubelet()
    assert {r.levelno for r in records} == {logging.INFO}  # V2: the change, no request detail
    assert any("set kubelet to V3" in r.getMessage() for r in records)
    assert admin.put(OWN, content=b"4").status_code == 200
    records = change_kubelet()
    assert any(r.levelno == logging.DEBUG and "PUT https://" in r.getMessage() for r in records)
    assert any(r.name == "httpx" and "HTTP Request: PUT" in r.getMessage() for r in records)
    assert TOKEN not in caplog.text
