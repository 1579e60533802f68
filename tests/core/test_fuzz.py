"""No input may produce a 500: schemathesis generates valid and invalid requests for every route
in the app's own OpenAPI description, with an admin token, against the real app and database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET

OUTBOUND = r"^/(commission|decommission|update|discover)/nodes$|^/verbosity|^/proxy/|^/drift/check$"


@pytest.fixture
def logging_restored() -> Iterator[None]:
    # PUT /debug/flags/v changes the process's log levels; put them back for the next tests.
    loggers = [logging.getLogger(), *map(logging.getLogger, logging.root.manager.loggerDict)]
    levels = [(lg, lg.level) for lg in loggers]
    yield
    for lg, level in levels:
        lg.setLevel(level)


@pytest.mark.usefixtures("logging_restored")
def test_no_request_gets_a_500(client: TestClient, tokens: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    # Streams never end by themselves; their domains test them. Routes that reach out of clusterm
    # (Ansible over SSH, calls to Kubernetes components) would send generated addresses off this
    # machine: their input is checked by their own domains' tests against loopback hosts only.
    schema = schema.exclude(path_regex=r"/stream$").exclude(path_regex=OUTBOUND)
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    failures: list[str] = []

    def call(case: schemathesis.Case) -> None:
        # Sent through `client`, the app started once for this test: schemathesis's own ASGI
        # client would run the app's lifespan again around every call.
        request: dict[str, Any] = {
            "params": case.query or None,
            "headers": {**{k: str(v) for k, v in (case.headers or {}).items()}, **headers},
        }
        if case.body is not NOT_SET:
            if "json" in (case.media_type or "json") and not isinstance(case.body, bytes):
                request["json"] = case.body
            else:
                raw = case.body
                request["content"] = raw if isinstance(raw, bytes) else str(raw).encode()
                request["headers"]["Content-Type"] = str(case.media_type or "application/json")
        try:
            status = client.request(case.method, case.formatted_path, **request).status_code
        except Exception as exc:  # the app raised: what a client sees as a 500
            status, error = 500, f" ({type(exc).__name__}: {exc})"
        else:
            error = ""
        if status >= 500:
            failures.append(f"{status} for {case.as_curl_command()}{error}")

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    # Every operation gets its own examples, valid and invalid, so none is left untried.
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run = settings(
                max_examples=15,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )(given(case=operation.as_strategy(mode))(call))
            try:
                run()
            except Unsatisfiable:
                # An operation with no input at all has no invalid variant to generate.
                assert mode == GenerationMode.NEGATIVE, operation.label
    assert failures == []
    # Nothing the fuzzer sent may have started a job (each would run Ansible).
    assert client.get("/jobs", headers=headers).json() == []
