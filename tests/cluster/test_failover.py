"""What a crash of the leader does to the work it was doing: the running job ends interrupted,
with the log it had written, and runs nowhere else; the next job runs on the new leader; a
verbosity revert due meanwhile runs once. And a replica that starts never disturbs the leader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.conftest import MakeCluster
from tests.cluster.replicas import (
    add_nodes,
    commission,
    emitted,
    events,
    fresh,
    job_of,
    log_lines,
    runs_recorded,
    started,
    wait_finished,
)
from tests.polling import wait_until
from tests.verbosity.conftest import TOKEN, Pki, component_settings
from tests.verbosity.emulator import Emulator


def test_a_job_killed_with_its_leader_ends_interrupted_and_the_next_runs_once(
    cluster: MakeCluster,
) -> None:
    replicas = cluster(ttl_s=2.0)
    replicas.start(3)
    leader = replicas.leader()
    watcher = next(r for r in replicas.living if r is not leader)
    node, second = fresh("k"), fresh("k")
    add_nodes(watcher.http, node, second)
    r = commission(watcher.http, node, record_to=str(replicas.record), emit_lines=400)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    def printed() -> list[str] | None:
        response = watcher.http.get("/info/job/active")
        if response.status_code != 200:
            return None
        lines: list[str] = response.json()["logs"]
        return lines if len(emitted(lines)) >= 20 else None

    # What a follower has read of the log, it read from the database: it must outlive the crash.
    before = wait_until(printed, timeout_s=60, what=f"job {job_id} to print 20 lines")
    leader.kill()

    def ended() -> dict[str, Any] | None:
        job = job_of(watcher.http, job_id)
        return job if job["status"] not in ("queued", "running") else None

    job = wait_until(ended, timeout_s=20, what=f"job {job_id} to end after its leader died")
    assert job["status"] == "interrupted", job
    new = replicas.leader(timeout_s=10)
    assert new is not leader
    for replica in replicas.living:
        assert job_of(replica.http, job_id)["status"] == "interrupted"
    after = log_lines(watcher.http, "last")
    assert after[: len(before)] == before  # what was flushed is kept, in order
    numbers = emitted(after)
    assert numbers == list(range(len(numbers))), "the kept log has a gap or a repeat"
    assert len(numbers) < 400  # it did not run on to its end anywhere

    r = commission(new.http, second, record_to=str(replicas.record), emit_lines=5)
    assert r.status_code == 202, r.text
    next_id = r.json()["id"]
    assert wait_finished(watcher.http, next_id)["status"] == "successful"
    (event,) = events(watcher.http, job=next_id, reason="JobStarted")
    assert new.id in str(event["note"])
    # Each job ran once: one start on the timeline, one run of its playbook.
    for one in (job_id, next_id):
        assert started(watcher.http, one) == 1, one
        assert runs_recorded(replicas, one) == 1, one


def test_a_follower_starting_never_interrupts_the_leaders_job(cluster: MakeCluster) -> None:
    replicas = cluster(ttl_s=2.0)
    replicas.start(2)
    leader = replicas.leader()
    node = fresh("m")
    add_nodes(leader.http, node)
    r = commission(leader.http, node, record_to=str(replicas.record), emit_lines=240)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    wait_until(
        lambda: len(emitted(log_lines(leader.http, "active"))) >= 5,
        timeout_s=60,
        what=f"job {job_id} to print",
    )
    late = replicas.add()  # starts mid-job: it migrates nothing, recovers nothing
    assert late.role() == "follower"
    assert job_of(late.http, job_id)["status"] == "running"  # it did start mid-job
    job = wait_finished(late.http, job_id)
    assert job["status"] == "successful", job
    assert replicas.leader() is leader
    assert emitted(log_lines(late.http)) == list(range(240))
    assert started(late.http, job_id) == 1
    assert runs_recorded(replicas, job_id) == 1
    assert events(late.http, job=job_id, reason="JobInterrupted") == []


# --- a verbosity revert due during a failover ---------------------------------------------------


@pytest.fixture
def kubelet(pki: Pki) -> Iterator[Emulator]:
    """n1's kubelet, emulated over TLS: it records every request it gets."""
    emulator = Emulator(ca=pki.ca, cert_dir=pki.directory)
    emulator.add("n1", token=TOKEN)
    emulator.start()
    yield emulator
    emulator.stop()


def test_a_revert_due_during_a_failover_runs_exactly_once(
    cluster: MakeCluster, pki: Pki, kubelet: Emulator
) -> None:
    components = {
        name: {key: str(value) for key, value in values.items()}
        for name, values in component_settings(pki).items()
    }
    replicas = cluster(
        ttl_s=2.0,
        config={
            "verbosity_components": components,
            "verbosity_timeout_s": 5,
            "verbosity_revert_retry_s": 0.5,
        },
    )
    replicas.start(3)
    leader = replicas.leader()
    follower = next(r for r in replicas.living if r is not leader)
    endpoint = kubelet.by_name["n1"]
    variables = {"clusterm_verbosity": {"kubelet": {"port": endpoint.port}}}
    r = follower.http.post("/nodes", json={"name": "n1", "address": "127.0.0.1", "vars": variables})
    assert r.status_code == 201, r.text
    # A registered node runs no component clusterm may reach; the jobs that commission it need
    # real hosts.
    replicas.sql("UPDATE node SET state = 'commissioned' WHERE name = 'n1'")

    r = follower.http.put("/proxy/kubelet/n1/debug/flags/v", content=b"6", params={"ttl": "3s"})
    assert r.status_code == 200, r.text
    assert endpoint.level == 6
    leader.kill()  # the revert is due in 3 s; a new leader takes over in about 2

    def puts() -> list[bytes]:
        return [req.body for req in endpoint.requests if req.method == "PUT"]

    wait_until(lambda: endpoint.level == 2, timeout_s=20, what="the kubelet back at level 2")
    survivor = next(r for r in replicas.living)

    def reverted_row() -> bool:
        levels = {k["node"]: k for k in survivor.http.get("/verbosity").json()}
        return levels["n1"]["reverts_at"] is None

    wait_until(
        reverted_row,
        timeout_s=10,
        what="the revert recorded as done",
    )
    new = replicas.leader()
    assert new is not leader
    assert puts() == [b"6", b"2"]  # the change, then one revert
    reverted = events(survivor.http, action="verbosity", reason="VerbosityReverted")
    assert len(reverted) == 1, reverted
    assert (reverted[0]["from_state"], reverted[0]["to_state"]) == ("6", "2")
    assert reverted[0]["result"] == "succeeded"
    # The killed replica, back as a follower, does not revert it again.
    leader.start()
    assert replicas.leader() is new
    assert puts() == [b"6", b"2"]
    assert len(events(survivor.http, action="verbosity", reason="VerbosityReverted")) == 1
