"""Which replica leads: one at a time, a new one soon after a crash, at once after a graceful
stop, never one older than the schema; and SQLite keeps its one process."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.cluster.conftest import MakeCluster
from tests.cluster.replicas import Cluster, Replica, events
from tests.core.test_daemon import CLUSTERM, free_port, wait_ready
from tests.polling import wait_until


def leaders_named(replica: Replica) -> set[str | None]:
    """Who leads, as one replica's GET /cluster/replicas tells it (its `leader` and the roles)."""
    body = replica.replicas()
    named = {r["id"] for r in body["replicas"] if r["role"] == "leader"}
    return {body["leader"], *named}


def test_exactly_one_of_three_leads_and_every_replica_agrees(shared: Cluster) -> None:
    leader = shared.leader()
    roles = [r.role() for r in shared.living]
    assert sorted(str(role) for role in roles) == ["follower", "follower", "leader"]
    for replica in shared.living:
        body = replica.replicas()
        assert body["answered_by"] == replica.id
        assert body["leader"] == leader.id
        listed = {r["id"]: r for r in body["replicas"]}
        assert set(listed) == {r.id for r in shared.members}
        assert {i: r["role"] for i, r in listed.items()} == {
            r.id: ("leader" if r is leader else "follower") for r in shared.members
        }
        assert all(r["alive"] and r["can_lead"] for r in listed.values())
        assert {r["advertise_url"] for r in listed.values()} == {r.url for r in shared.members}


def lead_changes(replica: Replica) -> list[dict[str, object]]:
    return events(replica.http, action="cluster", reason="LeaderChanged")


def test_kill_9_of_the_leader_gives_a_new_leader_within_10_s(cluster: MakeCluster) -> None:
    replicas = cluster(ttl_s=3.0)
    replicas.start(3)
    old = replicas.leader()
    before = len(lead_changes(old))
    killed_at = time.monotonic()
    old.kill()
    new = replicas.leader(timeout_s=10)
    took = time.monotonic() - killed_at
    assert new is not old
    assert took <= 10, f"a new leader after {took:.1f} s"
    for replica in replicas.living:
        assert leaders_named(replica) == {new.id}
        listed = {r["id"]: r for r in replica.replicas()["replicas"]}
        assert listed[old.id]["role"] in ("follower", "gone")  # its row is left as it was
    changes = lead_changes(new)
    assert len(changes) == before + 1
    change = changes[0]  # newest first
    assert change["actor"] == new.id
    details = change["details"]
    assert isinstance(details, dict)
    assert (details["replica"], details["previous"]) == (new.id, old.id)
    assert f"the lease of {old.id} ran out" in str(change["note"])
    assert new.id in str(change["note"])


def test_sigterm_of_the_leader_hands_the_lead_over_at_once(cluster: MakeCluster) -> None:
    # A long lease: waiting it out would take 20 s; a handover takes well under one renewal.
    replicas = cluster(ttl_s=20.0)
    replicas.start(2)
    old = replicas.leader()
    started = time.monotonic()
    old.terminate()
    new = replicas.leader(timeout_s=10)
    took = time.monotonic() - started
    assert new is not old
    assert took < 5, f"the lead passed {took:.1f} s after SIGTERM (lease: 20 s)"
    listed = {r["id"]: r for r in new.replicas()["replicas"]}
    assert listed[old.id]["role"] == "stopped"
    change = lead_changes(new)[0]
    assert change["details"]["previous"] == old.id  # type: ignore[index]
    assert f"{old.id} handed the lead over as it stopped" in str(change["note"])
    # The stopped replica comes back as a follower: the lead stays where it is.
    old.start()
    assert replicas.leader() is new
    assert old.role() == "follower"


def test_a_replica_older_than_the_schema_never_leads_and_still_answers_reads(
    cluster: MakeCluster,
) -> None:
    replicas = cluster(ttl_s=2.0)
    first, second = replicas.start(2)
    leader = replicas.leader()
    current = replicas.sql("SELECT version_num FROM alembic_version")
    assert len(current) == 1
    # A newer clusterm migrated the database past what these replicas know.
    replicas.sql("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    try:
        # The leader notices at its next renewal and steps down; its lease runs out, and each
        # replica finds it may not take it (and says so in its row).
        def nobody_leads() -> bool:
            return all(r.role() == "follower" for r in replicas.living) and all(
                body["leader"] is None and not any(row["can_lead"] for row in body["replicas"])
                for body in (r.replicas() for r in replicas.living)
            )

        wait_until(nobody_leads, timeout_s=15, what="every replica to refuse the lead, saying so")
        for replica in replicas.living:
            body = replica.replicas()
            assert body["leader"] is None
            for row in body["replicas"]:
                assert row["can_lead"] is False, row
                assert "9999_from_the_future" in row["note"], row
                assert "never leads" in row["note"], row
            # It still answers reads.
            assert replica.http.get("/info/nodes").status_code == 200
            assert replica.http.get("/jobs").status_code == 200
        # A replica started against that database says so, and serves reads as a follower.
        late = replicas.add()
        assert late.role() == "follower"
        assert late.http.get("/info/nodes").status_code == 200

        def own_note() -> str | None:
            row = {r["id"]: r for r in late.replicas()["replicas"]}[late.id]
            return None if row["can_lead"] else row["note"]

        note = wait_until(own_note, timeout_s=10, what="the late replica to say it cannot lead")
        assert "9999_from_the_future" in note
        assert "newer than this replica knows" in late.tail(200)
        assert leader in (first, second)
    finally:
        replicas.sql("UPDATE alembic_version SET version_num = :v", v=current[0][0])
    replicas.leader(timeout_s=15)  # the schema known again: one of them leads


def test_a_second_daemon_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ}
    env.pop("CLUSTERM_DATABASE_URL", None)
    port = free_port()
    log = tmp_path / "first.log"
    with log.open("wb") as err:
        first = subprocess.Popen(
            [*CLUSTERM, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stderr=err,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", first)
        second = subprocess.run(
            [*CLUSTERM, "serve", "--port", str(free_port()), "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"pid {first.pid}" in second.stderr
        assert f"http://127.0.0.1:{port}" in second.stderr
        assert "PostgreSQL" in second.stderr
        # The first one was left alone.
        assert first.poll() is None
        wait_ready(f"http://127.0.0.1:{port}", first)
    finally:
        first.kill()
        first.wait()
