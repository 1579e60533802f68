"""Every route of the app, with no token, a bad token, and each role.

The routes are read from the app itself, so a route added later is covered without editing this
file, and a route without a role fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from app.auth.vocabulary import Role
from app.config import load_settings
from app.main import create_app

# Who may call what does not depend on the database: SQLite only (tests/conftest.py); the
# refusals' audit trail on each backend is tests/auth/test_refusals.py's.
pytestmark = pytest.mark.backend_independent

HEALTH = {"/healthz", "/readyz"}
# The browser console's page and files: static, the same for everyone, no datum in them (a browser
# navigation cannot send a token; the page sends one with each API call). docs/console.md.
CONSOLE_SHELL = {"/ui", "/ui/", "/ui/assets/{name:path}", "/ui/{rest:path}"}
PUBLIC = HEALTH | CONSOLE_SHELL


def required_role(route: APIRoute) -> Role | None:
    def walk(dependant: Any) -> Iterator[Role]:
        for dep in dependant.dependencies:
            role = getattr(dep.call, "required_role", None)
            if role is not None:
                yield role
            yield from walk(dep)

    roles = list(walk(route.dependant))
    return max(roles, key=lambda r: r.rank) if roles else None


def all_routes() -> list[tuple[str, str, APIRoute]]:
    app: FastAPI = create_app(load_settings(data_dir="/nonexistent"))
    out = []
    # FastAPI includes routers lazily; iter_route_contexts is its public way to list them.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for method in sorted(context.methods or ()):
                out.append((method, str(context.path), route))
    assert out, "no route found: the way routes are listed has changed"
    return out


ROUTES = all_routes()
IDS = [f"{m} {p}" for m, p, _ in ROUTES]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body: Any = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, concrete(path), json=body, headers=headers)


def test_only_health_checks_and_the_console_shell_are_public() -> None:
    unguarded = {p for _, p, route in ROUTES if required_role(route) is None}
    assert unguarded == PUBLIC


def test_the_console_shell_reads_nothing_but_its_files() -> None:
    # Public only as long as it holds no data: its module may not reach the runtime, the database
    # or a domain (only the error shape).
    import app.console.router as shell

    source = Path(shell.__file__).read_text(encoding="utf-8")
    imported = set(re.findall(r"^(?:from|import) (app[\w.]*)", source, re.MULTILINE))
    assert imported == {"app.errors"}, imported


def test_health_checks_answer_without_a_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


@pytest.mark.parametrize(("method", "path", "route"), ROUTES, ids=IDS)
def test_no_token_and_bad_token_are_401(
    client: TestClient, method: str, path: str, route: APIRoute
) -> None:
    if path in PUBLIC:
        return
    for headers in ({}, {"Authorization": "Bearer cltm_not-a-real-token"}, {"Authorization": "x"}):
        r = call(client, method, path, headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"] == "Unauthorized"


@pytest.mark.parametrize(("method", "path", "route"), ROUTES, ids=IDS)
def test_each_role_is_let_in_or_refused_by_rank(
    client: TestClient,
    as_role: Callable[[str], dict[str, str]],
    method: str,
    path: str,
    route: APIRoute,
) -> None:
    needed = required_role(route)
    if needed is None:
        return
    for role in Role:
        if role.rank < needed.rank:
            r = call(client, method, path, as_role(role.value))
            assert r.status_code == 403, (role, r.text)
            assert r.json()["required_role"] == needed.value
            assert f"needs the {needed.value} role" in r.json()["message"]
        elif not path.endswith("/stream"):
            # Let in: whatever the answer (404 for the made-up name, 422 for the empty body, ...),
            # it is not an auth refusal. Streams never end, so their admission is tested in their
            # own domain's tests.
            r = call(client, method, path, as_role(role.value))
            assert r.status_code not in (401, 403), (role, r.text)
            assert r.status_code < 500, (role, r.text)


# Global extra vars can hold secrets (passwords for Ansible), so reading them is admin-only
# (README.md, "Tokens and roles"); every other GET is the viewer's.
ADMIN_READS = {"/globals"}
# The daemon's own log and the support bundle show more than a viewer's reads (every replica's
# log, the whole inventory's var names, every job's log at once): an operator's.
OPERATOR_READS = {"/debug/log", "/support/bundle"}


def test_get_routes_need_only_viewer() -> None:
    for method, path, route in ROUTES:
        if method == "GET" and path not in PUBLIC:
            expected = Role.ADMIN if path in ADMIN_READS else Role.VIEWER
            expected = Role.OPERATOR if path in OPERATOR_READS else expected
            assert required_role(route) == expected, path
