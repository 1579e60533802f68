"""A check job in the console: marked as such wherever it is shown, with what each host would
change (a real daemon, a real check job through tests/jobs/playbooks/job.yml)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.console.browser import go, main, sign_in
from tests.console.conftest import OpenTab, World, start_world
from tests.jobs.conftest import local_node, wait_finished


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = start_world(tmp_path_factory.mktemp("check"))
    try:
        world.create_token("viewer", "viewer")
        world.register(local_node("m1", "master"))
        admin = world.client()
        response = admin.post("/commission/nodes", json={"nodes": ["m1"], "check": True})
        assert response.status_code == 202, response.text
        job = wait_finished(admin, response.json()["id"])
        assert job["status"] == "successful"
        assert job["would_change"] == {"m1": []}
        world.jobs["check"] = job["id"]
        yield world
    finally:
        world.server.stop()


def test_a_check_job_is_marked_and_says_what_each_host_would_change(
    open_tab: OpenTab, world: World
) -> None:
    page, _ = open_tab(world.url)
    sign_in(page, world.url, world.tokens["viewer"])
    main(page, "nodes")
    job_id = world.jobs["check"]
    jobs = go(page, "#/jobs", "jobs")
    row = jobs.locator(f'tr[data-testid=job-row][data-job-id="{job_id}"]')
    expect(row.locator("td[data-col=kind]")).to_contain_text("commission")
    expect(row.get_by_test_id("job-check")).to_have_text("check")
    expect(jobs.get_by_test_id("last-job").get_by_test_id("job-check")).to_be_visible()

    job = go(page, f"#/jobs/{job_id}", "job")
    expect(job.get_by_test_id("job-summary").get_by_test_id("job-check")).to_be_visible()
    expect(job.get_by_test_id("job-summary")).to_contain_text("nothing was changed")
    host = job.locator('tr[data-testid=host-row][data-host="m1"]')
    expect(host.get_by_test_id("would-change")).to_have_text("nothing")
