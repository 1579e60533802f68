"""A database error that is not a busy database stays a 500: the client learns nothing of it, and
the daemon's log has its cause without the statement's bound parameters (tokens, passwords)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.errors import install_handlers

SECRET = "hunter2-not-for-logs"


def test_a_failed_statement_is_a_500_and_its_parameters_stay_out_of_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    app = FastAPI()
    install_handlers(app)

    @app.get("/broken")
    def broken() -> None:
        with engine.connect() as conn:  # no such table: an OperationalError, but not "busy"
            conn.execute(sa.text("SELECT * FROM missing WHERE token = :t"), {"t": SECRET})

    with (
        caplog.at_level(logging.ERROR),
        TestClient(app, raise_server_exceptions=False) as client,
    ):
        response = client.get("/broken")
    engine.dispose()

    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert response.json()["error"] == "InternalError"
    assert SECRET not in response.text
    logged = "\n".join(
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "no such table: missing" in logged  # the cause is there
    assert "SQL parameters hidden" in logged
    assert SECRET not in logged
