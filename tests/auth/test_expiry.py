"""Tokens that expire: `clusterm token create --ttl`, the 401 that names the expiry, the cache that
never keeps an expired token alive, `token list`, and the TokenCreated event."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.auth import service as auth
from app.db import Database, utcnow
from app.errors import Invalid
from app.timeline.models import TimelineEvent
from tests.core.test_daemon import CLUSTERM


def clusterm(data_dir: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLUSTERM_DATABASE_URL": db_url}
    return subprocess.run(
        [*CLUSTERM, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43_200), ("30d", 2_592_000), ("1d12h", 129_600)],
)
def test_ttl_durations(text: str, seconds: int) -> None:
    assert auth.parse_ttl(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("30", "not a duration"),
        ("1y", "not a duration"),
        ("-5m", "not a duration"),
        ("", "not a duration"),
        ("0s", "between 1s and 3650d"),
        ("3651d", "between 1s and 3650d"),
        ("9999999d" * 200, "not between"),  # no overflow, no 500: a plain refusal
    ],
)
def test_bad_ttls_are_refused_by_name(text: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason) as caught:
        auth.parse_ttl(text)
    assert caught.value.details["field"] == "ttl"


def test_an_expired_token_is_refused_naming_its_expiry(client: TestClient, db: Database) -> None:
    past = utcnow() - dt.timedelta(minutes=1)
    with db.write() as session:
        token = auth.create_token(session=session, name="old", role="admin", expires_at=past)
    r = client.get("/info/nodes", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["message"] == (
        f"the token 'old' expired at {past.isoformat(timespec='seconds')}; "
        "ask an admin for a new one"
    )


def test_the_cache_does_not_keep_an_expired_token_alive(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cache that would keep the token for a minute and a token valid for 3 s: room on a busy
    # machine for the first request before the expiry and the second within the cache's life.
    monkeypatch.setattr(auth.TokenCache, "TTL_S", 60.0)
    expires_at = utcnow() + dt.timedelta(seconds=3)
    with db.write() as session:
        token = auth.create_token(
            session=session, name="brief", role="viewer", expires_at=expires_at
        )
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/info/nodes", headers=headers).status_code == 200
    cached_at = time.monotonic()  # the token is now in the cache for TokenCache.TTL_S
    time.sleep(max(0.0, (expires_at - utcnow()).total_seconds()) + 0.05)
    r = client.get("/info/nodes", headers=headers)
    # Still within the cache's lifetime: only the expiry kept in the entry can refuse it.
    assert time.monotonic() - cached_at < auth.TokenCache.TTL_S
    assert r.status_code == 401
    assert "the token 'brief' expired at" in r.json()["message"]


def test_token_create_with_ttl_list_and_timeline(
    data_dir: Path, db_url: str, client: TestClient, db: Database
) -> None:
    before = utcnow()
    created = clusterm(
        data_dir, db_url, "token", "create", "--role", "viewer", "--name", "ci", "--ttl", "30d"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert client.get("/info/nodes", headers={"Authorization": f"Bearer {token}"}).is_success

    with db.read() as session:
        row = next(t for t in auth.list_tokens(session=session) if t.name == "ci")
        event = session.scalars(
            sa.select(TimelineEvent)
            .where(TimelineEvent.reason == "TokenCreated")
            .order_by(TimelineEvent.id.desc())
        ).first()
    assert row.expires_at is not None
    assert dt.timedelta(days=30) <= row.expires_at - before < dt.timedelta(days=30, minutes=1)
    expiry = row.expires_at.isoformat(timespec="seconds")
    assert event is not None
    assert event.details == {"token": "ci", "role": "viewer", "expires_at": expiry}
    assert f"expires at {expiry}" in (event.note or "")

    with db.write() as session:
        auth.create_token(
            session=session, name="gone", role="viewer", expires_at=before - dt.timedelta(days=1)
        )
    listed = clusterm(data_dir, db_url, "token", "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert lines["NAME"].split()[-1] == "EXPIRES"
    assert lines["ci"].endswith(expiry)
    assert "expired" not in lines["ci"]
    assert "expired " in lines["gone"]
    assert lines["admin"].endswith("never")
    assert token not in listed.stdout


@pytest.mark.parametrize("ttl", ["forever", "0s", "11000d"])
def test_token_create_with_a_bad_ttl_is_a_usage_error(
    data_dir: Path, db_url: str, db: Database, ttl: str
) -> None:
    r = clusterm(
        data_dir, db_url, "token", "create", "--role", "viewer", "--name", "x", "--ttl", ttl
    )
    assert r.returncode == 2
    assert "--ttl" in r.stderr
    assert r.stdout == ""
    with db.read() as session:
        assert "x" not in {t.name for t in auth.list_tokens(session=session)}
