"""Support tests run the real app with real jobs (tests/jobs playbooks, local connection)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from app.config import Settings
from tests.jobs.conftest import job_settings
from tests.verbosity.conftest import Pki, component_settings
from tests.verbosity.conftest import emulators as emulators  # the fixtures
from tests.verbosity.conftest import pki as pki


@pytest.fixture
def settings(data_dir: Path, db_url: str, pki: Pki) -> Settings:
    return job_settings(
        data_dir,
        db_url,
        verbosity_components=component_settings(pki),
        verbosity_timeout_s=2.0,
    )


def open_bundle(data: bytes) -> dict[str, bytes]:
    """Every member of a bundle by its name inside the bundle's top directory."""
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tops = {m.name.split("/", 1)[0] for m in tar.getmembers()}
        assert len(tops) == 1, tops
        for member in tar.getmembers():
            assert member.isfile(), member.name
            extracted = tar.extractfile(member)
            assert extracted is not None
            members[member.name.split("/", 1)[1]] = extracted.read()
    return members
