"""Following a running job in the console: its log arrives line by line, then the PLAY RECAP,
then its final status, all without reloading the page. A daemon of its own, so that the job
runs while no other test's job does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.console.browser import go, main, shoot, sign_in
from tests.console.conftest import OpenTab, World, local_node, start_world
from tests.jobs.conftest import wait_finished

LINES = 40


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = start_world(tmp_path_factory.mktemp("console-live"))
    try:
        world.create_token("viewer", "viewer")
        # A worker is commissioned with a master, or after one.
        world.register(local_node("m1", "master"), local_node("w1"))
        yield world
    finally:
        world.server.stop()


def test_a_running_job_s_log_is_followed_until_its_recap(
    open_tab: OpenTab, live: World, tmp_path: Path
) -> None:
    page, _ = open_tab(live.url)
    sign_in(page, live.url, live.tokens["viewer"])
    main(page, "nodes")
    # The job holds before printing the rest of its log until the test has watched it running:
    # no race with the machine's speed.
    gate = tmp_path / "go-ahead"
    job_id = live.commission(["m1", "w1"], gate_file=str(gate), print_lines=LINES)

    jobs = go(page, "#/jobs", "jobs")
    active = jobs.get_by_test_id("active-job")
    expect(active).to_contain_text(f"job={job_id}")
    shoot(page, "jobs-running")

    job = go(page, f"#/jobs/{job_id}", "job")
    page.evaluate("() => { window.notReloaded = true; }")
    status = job.get_by_test_id("job-status")
    log = job.get_by_test_id("job-log")
    expect(status).to_have_text("running")
    expect(log).to_contain_text(f"job={job_id}")
    expect(log).not_to_contain_text("PLAY RECAP")

    gate.touch()
    expect(log).to_contain_text("PLAY RECAP", timeout=90_000)
    expect(log).to_contain_text(f'"{LINES - 1}"')
    expect(status).to_have_text("successful")
    assert page.evaluate("() => window.notReloaded") is True
    assert log.locator("[data-line]").count() > LINES
    for host in ("m1", "w1"):
        expect(job.locator(f'tr[data-testid=host-row][data-host="{host}"]')).to_be_visible()
    shoot(page, "job")

    assert wait_finished(live.client(), job_id)["status"] == "successful"
    jobs = go(page, "#/jobs", "jobs")
    expect(jobs.get_by_test_id("no-active-job")).to_be_visible()
    expect(jobs.locator(f'tr[data-testid=job-row][data-job-id="{job_id}"]')).to_be_visible()
