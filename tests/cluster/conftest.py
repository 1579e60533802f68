"""Fixtures for the replica tests: real `clusterm serve` processes on a fresh PostgreSQL schema.

`shared` is three replicas kept for a whole module, for the tests that leave them all running;
`cluster` makes replicas that are the test's own, to kill, stop and restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.replicas import Cluster, pg_url
from tests.pg import fresh_schema
from tests.verbosity.conftest import pki  # noqa: F401 - the CA the emulated kubelets use

MakeCluster = Callable[..., Cluster]


@pytest.fixture(scope="session")
def postgres() -> str:
    return pg_url()


@pytest.fixture
def pg_schema(postgres: str) -> Iterator[str]:
    """A fresh schema of the test PostgreSQL (a cluster of its own), dropped at the end."""
    with fresh_schema(postgres) as url:
        yield url


@pytest.fixture
def cluster(postgres: str, tmp_path: Path) -> Iterator[MakeCluster]:
    """Make a cluster on a schema of its own (ttl_s, config: see Cluster); stopped at the end."""
    made: list[Cluster] = []
    with fresh_schema(postgres) as url:

        def make(**options: Any) -> Cluster:
            base = tmp_path / f"cluster{len(made)}"
            base.mkdir()
            made.append(Cluster(base, url, **options))
            return made[-1]

        try:
            yield make
        finally:
            for one in made:
                one.close()


@pytest.fixture(scope="module")
def shared(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three replicas for the module's tests that kill none of them."""
    with fresh_schema(postgres) as url:
        made = Cluster(tmp_path_factory.mktemp("shared"), url)
        try:
            made.start(3)
            yield made
        finally:
            made.close()
