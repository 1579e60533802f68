"""Scrapes, parsed the way Prometheus reads them: with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by sample name (`clusterm_jobs_total`, `..._bucket`)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def scrape(client: httpx.Client, headers: Mapping[str, str] | None = None) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of `name` with exactly these labels; fails when there is none."""
    found = [v for have, v in samples.get(name, []) if have == labels]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples in {samples.get(name)}"
    return found[0]


def by_label(samples: Samples, name: str, label: str, **where: str) -> Mapping[str, float]:
    """The samples of `name` that carry `where`, by the value of `label`."""
    return {
        have[label]: v
        for have, v in samples.get(name, [])
        if all(have.get(k) == w for k, w in where.items())
    }
