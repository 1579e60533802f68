"""GET /metrics on the API: its token, its route labels. In the test process, where other tests'
apps count too: the per-process values are checked as differences between two scrapes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from app.auth import service as auth
from app.db import Database, utcnow
from tests.metrics.conftest import Samples, scrape, value


def requests(samples: Samples, method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    found = [v for have, v in samples.get("clusterm_http_requests_total", []) if have == labels]
    return found[0] if found else 0.0


def test_metrics_needs_a_viewer_token(
    client: TestClient, as_role: Callable[[str], dict[str, str]]
) -> None:
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert "no token" in refused.json()["message"]
    assert client.get("/metrics", headers={"Authorization": "Bearer cltm_nope"}).status_code == 401
    samples = scrape(client, headers=as_role("viewer"))
    assert value(samples, "clusterm_cluster_metrics_up") == 1


def test_openmetrics_when_asked_for(
    client: TestClient, as_role: Callable[[str], dict[str, str]]
) -> None:
    headers = {**as_role("viewer"), "Accept": "application/openmetrics-text; version=1.0.0"}
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")
    # A version prometheus_client cannot read as numbers: the text format, not a 500.
    odd = {**as_role("viewer"), "Accept": "application/openmetrics-text; version=1.x"}
    r = client.get("/metrics", headers=odd)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_route_labels_are_templates_and_a_client_makes_no_new_one(
    app: FastAPI, admin: TestClient
) -> None:
    before = scrape(admin)
    assert admin.get("/jobs/987654").status_code == 404
    assert admin.get("/jobs/not-a-number").status_code == 422
    assert admin.get("/no/such/route-c0ffee").status_code == 404
    assert admin.get("/no/other/route-decaf").status_code == 404
    assert admin.request("BREW", "/info/nodes").status_code == 405
    after = scrape(admin)

    def grew(method: str, route: str, status: str) -> float:
        return requests(after, method, route, status) - requests(before, method, route, status)

    assert grew("GET", "/jobs/{job_id}", "404") == 1
    assert grew("GET", "/jobs/{job_id}", "422") == 1
    assert grew("GET", "unmatched", "404") == 2
    assert grew("other", "/info/nodes", "405") == 1
    # The scrape before is counted in the one after, under its template.
    assert grew("GET", "/metrics", "200") == 1
    templates = {str(c.path) for c in iter_route_contexts(app.routes)} | {"unmatched"}
    labels = after["clusterm_http_requests_total"]
    assert {have["route"] for have, _ in labels} <= templates
    assert {have["method"] for have, _ in labels} <= {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "other",
    }


def test_an_expired_token_is_counted_as_expired(
    client: TestClient, db: Database, as_role: Callable[[str], dict[str, str]]
) -> None:
    with db.write() as session:
        token = auth.create_token(
            session=session, name="old", role="viewer", expires_at=utcnow() - dt.timedelta(days=1)
        )
    before = scrape(client, headers=as_role("viewer"))
    assert (
        client.get("/info/nodes", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    after = scrape(client, headers=as_role("viewer"))
    refusals = "clusterm_token_refusals_total"
    for reason in ("missing", "malformed", "unknown", "forbidden"):
        assert value(after, refusals, reason=reason) == value(before, refusals, reason=reason)
    assert value(after, refusals, reason="expired") == value(before, refusals, reason="expired") + 1
