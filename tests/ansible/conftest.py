"""The Ansible layer's tests run jobs with the jobs tests' playbooks and settings."""

from tests.jobs.conftest import daemon, settings  # noqa: F401 - the fixtures, for these tests
