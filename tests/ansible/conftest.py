"""The Ansible layer's tests run jobs with the jobs tests' playbooks and settings."""

from tests.jobs.conftest import settings  # noqa: F401 - the fixture, for these tests
