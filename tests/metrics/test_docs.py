"""The metrics documentation and the example alert rules name metrics that exist, and every
metric clusterm exports is documented."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from tests.metrics.conftest import families, parse

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAME = re.compile(r"\bclusterm_[a-z_]+[a-z]\b")
# What a family's samples add to its name.
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def scraped(client: TestClient, headers: dict[str, str]) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    text: str = response.text
    return text


def test_every_metric_an_alert_rule_uses_exists(
    client: TestClient, as_role: Callable[[str], dict[str, str]]
) -> None:
    samples = parse(scraped(client, as_role("viewer")))
    rules = yaml.safe_load((DOCS / "prometheus" / "alerts.yml").read_text())
    used = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in NAME.findall(rule["expr"])
    }
    assert {"clusterm_jobs_total", "clusterm_nodes_missing"} <= used
    assert used - samples.keys() == set()


def test_the_example_scrape_config_loads_the_alert_rules() -> None:
    config = yaml.safe_load((DOCS / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"


def test_every_exported_metric_is_documented_and_nothing_else(
    client: TestClient, as_role: Callable[[str], dict[str, str]]
) -> None:
    text = scraped(client, as_role("viewer"))
    # Families whose samples only appear once something happened (a label set first used).
    exported = {f for f in families(text) if f.startswith("clusterm_")} | {
        "clusterm_job_active_started_timestamp_seconds",
        "clusterm_drift_last_check_timestamp_seconds",
        "clusterm_http_requests",
        "clusterm_http_request_duration_seconds",
        "clusterm_timeline_events",
        "clusterm_verbosity_changes",
    }
    documented = set()
    for name in NAME.findall((DOCS / "metrics.md").read_text()):
        for suffix in SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in exported:
                name = name.removesuffix(suffix)
        documented.add(name)
    assert documented == exported
