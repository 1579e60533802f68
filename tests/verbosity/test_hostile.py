"""Every verbosity route answers hostile input with a 4xx naming the problem, never a 500 (on
SQLite and PostgreSQL, which refuses NUL characters with an error), and sends nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.verbosity.conftest import TOKEN, register
from tests.verbosity.emulator import Emulator

NUL = "n\x00"
DIGITS = "9" * 5000
HOSTILE_NAMES = [NUL, "%00", "n1%00", "N1", "a" * 300, "\u00e9", "n1\n", "n1/../n2", "n1."]
HOSTILE_COMPONENTS = ["kube\x00let", "%00", "k" * 5000, "kubelet\n", "../kubelet"]
HOSTILE_TTLS = [DIGITS, DIGITS + "s", "1" * 40 + "h", "\x00", "1h\x00", "-1", "1e9", "9" * 31]


def in_path(text: str) -> str:
    # What a client puts on the wire; the server decodes it back into the character.
    return text.replace("\x00", "%00").replace("\n", "%0A")


def requests() -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    for name in HOSTILE_NAMES:
        out += [
            ("PUT", f"/proxy/kubelet/{in_path(name)}/debug/flags/v", {"content": b"4"}),
            ("DELETE", f"/verbosity/kubelet/{in_path(name)}", {}),
            ("GET", "/verbosity", {"params": {"node": name}}),
            ("DELETE", "/verbosity", {"params": {"node": name}}),
            ("DELETE", "/verbosity", {"params": {"node": name, "component": "kubelet"}}),
            ("POST", "/verbosity", {"json": {"component": "kubelet", "nodes": [name], "level": 4}}),
        ]
    for component in HOSTILE_COMPONENTS:
        out += [
            ("PUT", f"/proxy/{in_path(component)}/n1/debug/flags/v", {"content": b"4"}),
            ("DELETE", f"/verbosity/{in_path(component)}/n1", {}),
            ("GET", "/verbosity", {"params": {"component": component}}),
            ("DELETE", "/verbosity", {"params": {"component": component}}),
            ("DELETE", "/verbosity", {"params": {"component": component, "node": "n1"}}),
            ("POST", "/verbosity", {"json": {"component": component, "nodes": "all", "level": 4}}),
        ]
    for ttl in HOSTILE_TTLS:
        out += [
            ("PUT", "/proxy/kubelet/n1/debug/flags/v", {"content": b"4", "params": {"ttl": ttl}}),
            ("PUT", "/debug/flags/v", {"content": b"4", "params": {"ttl": ttl}}),
            (
                "POST",
                "/verbosity",
                {"json": {"component": "kubelet", "nodes": "all", "level": 4, "ttl": ttl}},
            ),
        ]
    out += [
        ("POST", "/verbosity", {"json": {"component": "kubelet", "nodes": {"group": NUL}}}),
        (
            "POST",
            "/verbosity",
            {"content": b'{"component": "kubelet", "nodes": "all", "level": 1e400}'},
        ),
        ("POST", "/verbosity", {"content": b'{"component": "kubelet", "level": NaN}'}),
        ("POST", "/verbosity", {"content": b"[" * 100_000}),
        ("PUT", "/proxy/kubelet/n1/debug/flags/v", {"content": b"\x00"}),
        ("PUT", "/debug/flags/v", {"content": DIGITS.encode()}),
    ]
    return out


def test_no_hostile_input_gets_a_500_or_reaches_a_component(
    admin: TestClient, emulators: Callable[..., Emulator]
) -> None:
    emulator = emulators()
    endpoint = emulator.add("n1", token=TOKEN)
    emulator.start()
    register(admin, "n1", {"kubelet": endpoint.port})
    failures = []
    for method, path, options in requests():
        headers = {"Content-Type": "application/json"} if "content" in options else {}
        if path.startswith(("/proxy", "/debug")):
            headers = {}
        r = admin.request(method, path, headers=headers, **options)
        if not 400 <= r.status_code < 500:
            failures.append((method, path, options, r.status_code, r.text[:200]))
        elif r.headers["content-type"] == "application/json":
            assert r.json()["message"], (method, path)
    assert failures == []
    assert endpoint.requests == []
    assert admin.get("/verbosity").json() == []


@pytest.mark.parametrize("ttl", [DIGITS, "1" * 33])
def test_a_ttl_of_thousands_of_digits_is_a_422_naming_the_field(
    admin: TestClient, ttl: str
) -> None:
    r = admin.put("/debug/flags/v", content=b"3", params={"ttl": ttl})
    assert r.status_code == 422
    assert "ttl" in r.json()["message"]
