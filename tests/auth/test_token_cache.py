"""Checked tokens are remembered for TokenCache.TTL_S, so that a request costs no database read;
a token revoked meanwhile (by `clusterm token revoke`, another process) stops within that time."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from app.auth import service as auth
from app.auth.models import Token
from app.auth.vocabulary import Role
from app.db import Database
from tests.polling import wait_until


def test_a_revoked_token_stops_working_within_the_ttl(
    client: TestClient, db: Database, as_role: Callable[[str], dict[str, str]]
) -> None:
    headers = as_role("viewer")
    assert client.get("/info/nodes", headers=headers).status_code == 200
    with db.write() as session:
        auth.revoke_token(session=session, name="viewer")

    def refused() -> int | None:
        status = client.get("/info/nodes", headers=headers).status_code
        return None if status == 200 else status

    # Not a timing assertion on speed: the bound is what the cache promises, with margin.
    status = wait_until(
        refused,
        timeout_s=auth.TokenCache.TTL_S + 5,
        what="the revoked token to be refused",
        interval_s=0.1,
    )
    assert status == 401
    assert "unknown or was revoked" in client.get("/info/nodes", headers=headers).json()["message"]


def test_an_unknown_token_is_not_remembered(client: TestClient, db: Database) -> None:
    """A token created after a refused attempt works at once: refusals are never cached."""
    with db.write() as session:
        token = auth.create_token(session=session, name="later", role="viewer")
    with db.write() as session:
        auth.revoke_token(session=session, name="later")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/info/nodes", headers=headers).status_code == 401
    with db.write() as session:
        session.add(
            Token(
                name="later",
                role=Role.VIEWER,
                token_hash=auth.token_digest(headers["Authorization"]),
            )
        )
    assert client.get("/info/nodes", headers=headers).status_code == 200


def test_the_cache_is_bounded() -> None:
    cache = auth.TokenCache()
    for i in range(auth.TokenCache.MAX_ENTRIES + 10):
        cache.put(f"d{i}", auth.Principal(name=f"t{i}", role=Role.VIEWER))
    assert len(cache._entries) <= auth.TokenCache.MAX_ENTRIES
