"""The console in headless Chromium against a real daemon that has run real jobs: sign-in, the
nodes, a node's history, the timeline and its filters, a failed host, drift, verbosity, values
shown as text, the token kept in session storage only, and sign-in again once it is revoked.

Every page visited is photographed (tests/console/browser.py says where), for review and for the
README.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.console.browser import TOKEN_KEY, go, main, screenshot_dir, shoot, sign_in, stored_token
from tests.console.conftest import OpenTab, World, local_node, start_world
from tests.jobs.conftest import wait_finished
from tests.polling import wait_until
from tests.verbosity.emulator import Emulator

# What the console's Content-Security-Policy must say (docs/console.md).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# Markup where data goes. Node labels cannot carry it (the API holds them to Kubernetes' label
# syntax), so it travels in a node's vars (shown to admins) and in a job's log.
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
XSS_VARS = {"note": SCRIPT, "quote": f'">{IMG}'}
LOG_MARKER = "<script>alert(3)</script><img src=x onerror=alert(4)>"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """m1 (master) and w1 commissioned by the operator "ops", who then sets m1's kubelet to
    level 4; a drift check that finds only m1 in the cluster (w1 missing); w2 failed by an
    admin's commission; xss never commissioned."""
    # The kubelets' /debug/flags/v (one endpoint serves every node: they share an address).
    kubelets = Emulator(ca=None)
    kubelet = kubelets.add("kubelet")
    kubelets.start()
    components = {"kubelet": {"port": kubelet.port, "scheme": "http"}}
    try:
        world = start_world(
            tmp_path_factory.mktemp("console"),
            CLUSTERM_VERBOSITY_COMPONENTS=json.dumps(components),
        )
    except BaseException:
        kubelets.stop()
        raise
    try:
        world.create_token("viewer", "viewer")
        world.create_token("operator", "ops")
        world.register(
            local_node("m1", "master", labels={"zone": "a"}),
            local_node("w1", labels={"zone": "b", "disk": "ssd"}),
            local_node("w2"),
            local_node("xss", vars=XSS_VARS),
        )
        admin = world.client()
        ok = world.commission(["m1", "w1"], by="ops")
        assert wait_finished(admin, ok)["status"] == "successful"
        level = world.client("ops").put("/proxy/kubelet/m1/debug/flags/v", content="4")
        assert level.status_code == 200, level.text
        check = admin.post("/drift/check")
        assert check.status_code == 200, check.text
        assert admin.get("/info/node/w1").json()["missing_since"] is not None
        failed = world.commission(["w2"], fail_hosts=["w2"], marker=LOG_MARKER)
        assert wait_finished(admin, failed)["status"] == "failed"
        world.jobs.update(ok=ok, failed=failed)
        yield world
    finally:
        world.server.stop()
        kubelets.stop()


def signed_in(open_tab: OpenTab, world: World, who: str = "viewer") -> Page:
    page, _ = open_tab(world.url)
    sign_in(page, world.url, world.tokens[who])
    main(page, "nodes")
    return page


def event_ids(rows: Locator) -> list[int]:
    return [int(i) for i in rows.evaluate_all("(rows) => rows.map((r) => r.dataset.eventId)")]


def api_event_ids(world: World, path: str, **params: Any) -> list[int]:
    page = world.client("viewer").get(path, params={**params, "limit": 1000}).json()
    return [e["id"] for e in page["items"]]


def test_sign_in_then_every_node_with_its_state_group_address_and_labels(
    open_tab: OpenTab, cluster: World
) -> None:
    page, watch = open_tab(cluster.url)
    response = page.goto(f"{cluster.url}/ui/")
    assert response is not None
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    main(page, "signin")
    expect(page.get_by_test_id("nav-nodes")).not_to_be_visible()
    shoot(page, "signin")

    token = cluster.tokens["viewer"]
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("signin-submit").click()
    nodes_page = main(page, "nodes")

    nodes = cluster.client("viewer").get("/info/nodes").json()
    expect(nodes_page.get_by_test_id("node-row")).to_have_count(len(nodes))
    for node in nodes:
        row = nodes_page.locator(f'tr[data-testid="node-row"][data-node="{node["name"]}"]')
        expect(row.locator("td[data-col=name]")).to_contain_text(node["name"])
        expect(row.locator("td[data-col=state]")).to_contain_text(node["state"])
        expect(row.locator("td[data-col=group]")).to_contain_text(node["host_group"])
        expect(row.locator("td[data-col=address]")).to_contain_text(node["address"])
        for key, value in node["labels"].items():
            expect(row.locator("td[data-col=labels]")).to_contain_text(key)
            expect(row.locator("td[data-col=labels]")).to_contain_text(value)
    expect(nodes_page.locator('[data-node="w1"] [data-testid=missing-mark]')).to_be_visible()
    shoot(page, "nodes")

    # The token lives in this tab's session storage, and nowhere a server or a log could see it.
    assert stored_token(page) == token
    assert page.evaluate("() => localStorage.length") == 0
    assert page.context.cookies() == []
    assert watch.requests, "the console made no request"
    assert not [url for url in watch.requests if token in url]

    # The mark means "gone from the cluster since": a node that was never in it (registered, or
    # failed its commission) is not missing, though the drift check found it absent.
    for node in nodes:
        row = nodes_page.locator(f'tr[data-testid="node-row"][data-node="{node["name"]}"]')
        marks = 1 if node["missing_since"] else 0
        expect(row.get_by_test_id("missing-mark")).to_have_count(marks)


def test_a_refused_token_stays_on_sign_in(open_tab: OpenTab, cluster: World) -> None:
    page, _ = open_tab(cluster.url)
    sign_in(page, cluster.url, "cm_not-a-token-of-this-daemon")
    expect(page.get_by_test_id("signin-error")).to_be_visible()
    main(page, "signin")
    assert stored_token(page) is None


def test_signing_out_forgets_the_token(open_tab: OpenTab, cluster: World) -> None:
    page = signed_in(open_tab, cluster)
    page.get_by_test_id("signout").click()
    main(page, "signin")
    assert stored_token(page) is None
    go(page, "#/timeline", "signin")
    expect(page).to_have_url(re.compile(r"#/signin$"))
    expect(page.get_by_test_id("nav-timeline")).not_to_be_visible()


def test_a_node_page_shows_its_details_and_history(open_tab: OpenTab, cluster: World) -> None:
    page = signed_in(open_tab, cluster)
    page.locator('tr[data-node="w1"] a[data-testid=node-link]').click()
    node_page = main(page, "node")
    assert page.evaluate("() => location.hash") == "#/nodes/w1"
    details = node_page.get_by_test_id("node-details")
    for text in ("w1", "127.0.0.1", "worker", "zone", "ssd"):
        expect(details).to_contain_text(text)

    rows = node_page.get_by_test_id("event-row")
    expected = api_event_ids(cluster, "/info/node/w1/history")
    assert expected, "w1 has no history to show"
    expect(rows).to_have_count(len(expected))
    assert event_ids(rows) == expected
    shoot(page, "node")


def set_filter(form: Locator, name: str, value: str) -> None:
    field = form.locator(f'[name="{name}"]')
    if field.evaluate("(e) => e.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("node", "w1"), ("action", "register"), ("result", "failed"), ("actor", "ops")],
)
def test_the_timeline_filters_by_what_the_url_says(
    open_tab: OpenTab, cluster: World, name: str, value: str
) -> None:
    page = signed_in(open_tab, cluster)
    page.get_by_test_id("nav-timeline").click()
    timeline = main(page, "timeline")
    rows = timeline.get_by_test_id("event-row")
    expect(rows.first).to_be_visible()

    expected = api_event_ids(cluster, "/info/timeline", **{name: value})
    everything = api_event_ids(cluster, "/info/timeline")
    assert expected, f"no event has {name}={value}: the setup should have made some"
    assert len(expected) < len(everything), "the filter would leave every event"

    set_filter(timeline.get_by_test_id("timeline-filters"), name, value)
    timeline.get_by_test_id("timeline-apply").click()
    expect(page).to_have_url(re.compile(rf"/ui/#/timeline\?(.*&)?{name}={value}(&|$)"))
    timeline = main(page, "timeline")
    rows = timeline.get_by_test_id("event-row")
    expect(rows).to_have_count(len(expected))
    assert event_ids(rows) == expected
    for cell in rows.locator(f"td[data-col={name}]").all():
        expect(cell).to_contain_text(value)
    if name == "node":
        shoot(page, "timeline")

    # The filter is in the URL: a reload (or a shared link) shows the same events.
    page.reload()
    timeline = main(page, "timeline")
    expect(timeline.get_by_test_id("event-row")).to_have_count(len(expected))
    expect(timeline.locator(f'[data-testid=timeline-filters] [name="{name}"]')).to_have_value(value)


def test_the_timeline_follows_new_events_live(open_tab: OpenTab, cluster: World) -> None:
    page = signed_in(open_tab, cluster)
    timeline = go(page, "#/timeline", "timeline")
    rows = timeline.get_by_test_id("event-row")
    expect(rows.first).to_be_visible()
    page.evaluate("() => { window.notReloaded = true; }")
    timeline.get_by_test_id("timeline-follow").check()

    cluster.register(local_node("late1"))
    expect(rows.first.locator("td[data-col=node]")).to_have_text("late1")
    expect(rows.first.locator("td[data-col=action]")).to_have_text("register")
    assert page.evaluate("() => window.notReloaded") is True


def test_the_timeline_prints_without_the_navigation(open_tab: OpenTab, cluster: World) -> None:
    page = signed_in(open_tab, cluster)
    timeline = go(page, "#/timeline", "timeline")
    expect(timeline.get_by_test_id("event-row").first).to_be_visible()
    page.emulate_media(media="print")
    expect(page.get_by_test_id("nav-timeline")).not_to_be_visible()
    expect(timeline.get_by_test_id("event-row").first).to_be_visible()
    pdf = page.pdf(format="A4")
    (screenshot_dir() / "timeline.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF-")
    blank = page.context.new_page()
    # Text embeds its fonts: a printed timeline outweighs a blank page many times over.
    assert len(pdf) > 4 * len(blank.pdf(format="A4")), "the printed timeline is empty"
    blank.close()
    page.emulate_media(media="screen")
    expect(page.get_by_test_id("nav-timeline")).to_be_visible()


def test_the_jobs_page_lists_the_finished_jobs(open_tab: OpenTab, cluster: World) -> None:
    page = signed_in(open_tab, cluster)
    page.get_by_test_id("nav-jobs").click()
    jobs = main(page, "jobs")
    expect(jobs.get_by_test_id("no-active-job")).to_be_visible()
    for job_id in cluster.jobs.values():
        expect(jobs.locator(f'tr[data-testid=job-row][data-job-id="{job_id}"]')).to_be_visible()
    expect(jobs.get_by_test_id("last-job")).to_contain_text("failed")
    shoot(page, "jobs")

    jobs.locator(f'tr[data-job-id="{cluster.jobs["ok"]}"] a[data-testid=job-link]').click()
    job = main(page, "job")
    expect(job.get_by_test_id("job-status")).to_have_text("successful")
    expect(job.get_by_test_id("job-log")).to_contain_text("PLAY RECAP")
    for host in ("m1", "w1"):
        expect(job.locator(f'tr[data-testid=host-row][data-host="{host}"]')).to_be_visible()


def test_a_failed_host_shows_its_failed_task(open_tab: OpenTab, cluster: World) -> None:
    page = signed_in(open_tab, cluster)
    # From the timeline's failures to the job that failed, as a reader of a ticket would go.
    timeline = go(page, "#/timeline?result=failed", "timeline")
    timeline.get_by_test_id("event-job-link").first.click()
    job = main(page, "job")
    assert page.evaluate("() => location.hash") == f"#/jobs/{cluster.jobs['failed']}"
    expect(job.get_by_test_id("job-status")).to_have_text("failed")
    job.locator('tr[data-testid=host-row][data-host="w2"] a[data-testid=host-link]').click()
    host = main(page, "host")
    assert page.evaluate("() => location.hash") == f"#/jobs/{cluster.jobs['failed']}/hosts/w2"
    failed = host.get_by_test_id("failed-task")
    expect(failed).to_have_count(1)
    expect(failed.locator("td[data-col=task]")).to_contain_text("Fail on request")
    expect(failed.locator("td[data-col=message]")).to_contain_text("asked to fail w2")
    shoot(page, "host")


def test_the_drift_page_names_the_missing_node(open_tab: OpenTab, cluster: World) -> None:
    page = signed_in(open_tab, cluster)
    page.get_by_test_id("nav-drift").click()
    drift = main(page, "drift")
    expect(drift.get_by_test_id("drift-outcome")).to_be_visible()
    expect(drift.get_by_test_id("drift-missing")).to_contain_text("w1")
    expect(drift.get_by_test_id("drift-missing")).not_to_contain_text("m1")
    shoot(page, "drift")


def test_the_verbosity_page_lists_the_levels_set(open_tab: OpenTab, cluster: World) -> None:
    page = signed_in(open_tab, cluster)
    page.get_by_test_id("nav-verbosity").click()
    verbosity = main(page, "verbosity")
    rows = verbosity.get_by_test_id("level-row")
    expect(rows).to_have_count(len(cluster.client("viewer").get("/verbosity").json()))
    row = verbosity.locator("tr[data-testid=level-row]", has_text="kubelet").filter(has_text="m1")
    expect(row.locator("td[data-col=level]")).to_have_text("4")
    expect(row.locator("td[data-col=set_by]")).to_contain_text("ops")
    expect(row.locator("td[data-col=reverts_at]")).not_to_be_empty()
    shoot(page, "verbosity")


def test_values_are_shown_as_text_never_as_markup(open_tab: OpenTab, cluster: World) -> None:
    # Labels never hold markup: the API refuses it before any page could show it.
    refused = cluster.client().post("/nodes", json=local_node("xss2", labels={"note": SCRIPT}))
    assert refused.status_code == 422, refused.text

    # But a label may hold it all the same where the API was not the way in (a row an older
    # version wrote, a restored backup, a hand edit): the page must show it as text too.
    db = cluster.server.db_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(db)) as con, con:
        con.execute(
            "UPDATE node SET labels = ? WHERE name = 'xss'",
            (json.dumps({"note": SCRIPT, IMG: "x"}),),
        )

    page = signed_in(open_tab, cluster, "admin")  # var values are shown to admins only
    row = page.locator('tr[data-testid=node-row][data-node="xss"]')
    expect(row.locator("td[data-col=labels]")).to_contain_text(f"note={SCRIPT}")
    expect(row.locator("td[data-col=labels]")).to_contain_text(f"{IMG}=x")
    node = go(page, "#/nodes/xss", "node")
    details = node.get_by_test_id("node-details")
    expect(details).to_contain_text(SCRIPT)
    expect(details).to_contain_text(IMG)

    job = go(page, f"#/jobs/{cluster.jobs['failed']}", "job")
    expect(job.get_by_test_id("job-log")).to_contain_text(f"marker={LOG_MARKER}")
    expect(job.get_by_test_id("job-status")).to_have_text("failed")

    timeline = go(page, "#/timeline?node=xss", "timeline")
    expect(timeline.get_by_test_id("event-row").first).to_be_visible()

    # Nothing the data held became an element, and no script of it ran.
    assert page.locator("body script").count() == 0
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator("[onerror]").count() == 0


def test_a_revoked_token_sends_the_page_back_to_sign_in(open_tab: OpenTab, cluster: World) -> None:
    token = cluster.create_token("viewer", "leaving")
    page, _ = open_tab(cluster.url)
    sign_in(page, cluster.url, token)
    main(page, "nodes")
    go(page, "#/timeline", "timeline")
    assert stored_token(page) == token

    cluster.revoke_token("leaving")
    # The daemon remembers a checked token for a moment (app.auth.service.TokenCache).
    with cluster.server.client(token) as client:
        wait_until(
            lambda: client.get("/version").status_code == 401,
            timeout_s=30,
            what="the daemon to refuse the revoked token",
        )
    page.get_by_test_id("nav-nodes").click()
    main(page, "signin")
    expect(page.get_by_test_id("signin-error")).to_contain_text("sign in again")
    assert stored_token(page) is None
    assert page.evaluate("(key) => sessionStorage.getItem(key)", TOKEN_KEY) is None

    # Signing in again leads back where the user was sent away from.
    page.get_by_test_id("token-input").fill(cluster.tokens["viewer"])
    page.get_by_test_id("signin-submit").click()
    main(page, "nodes")
