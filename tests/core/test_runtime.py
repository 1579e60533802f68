"""The runtime's start and stop order, on the real app (see app.runtime): work asked for during
shutdown is refused, nothing uses the database after it is closed, a start-up that fails half-way
stops what it had started, and the background group stops and starts again while the app runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import Database, DatabaseClosed, upgrade
from app.drift import service as drift
from app.drift.watch import DriftWatch
from app.errors import Unavailable
from app.jobs.models import Job
from app.jobs.vocabulary import Kind
from app.main import create_app
from app.nodes.models import Node
from app.runtime import Runtime, runtime_of
from app.timeline import service as timeline
from app.timeline.models import TimelineEvent
from app.timeline.vocabulary import Result
from tests.jobs.conftest import (
    job_settings,
    local_node,
    register,
    states,
    wait_finished,
    wait_lines,
)
from tests.polling import wait_until


@pytest.fixture
def settings(data_dir: Path, db_url: str) -> Settings:
    return job_settings(data_dir, db_url)


def admin_headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token_file.read_text().strip()}"}


class DbUses:
    """Every read, write and dispose of a Database from now on, in order, each with whether
    its database was closed at the time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[tuple[str, bool]] = []
        self.disposed = threading.Event()
        read, write, dispose = Database.read, Database.write, Database.dispose

        def wrap(name: str, fn: Callable[[Database], Any]) -> Callable[[Database], Any]:
            def used(db: Database) -> Any:
                self.log.append((name, db.disposed))
                return fn(db)

            return used

        def disposing(db: Database) -> None:
            self.log.append(("dispose", db.disposed))
            dispose(db)
            self.disposed.set()

        # On the class, before the app starts: the runtime holds on to the bound `dispose`.
        monkeypatch.setattr(Database, "read", wrap("read", read))
        monkeypatch.setattr(Database, "write", wrap("write", write))
        monkeypatch.setattr(Database, "dispose", disposing)

    def after_dispose(self) -> list[str]:
        return [name for name, closed in self.log if closed]


@contextmanager
def stopping_in_background(client: TestClient) -> Iterator[threading.Thread]:
    """Run the app's shutdown in a thread; on leaving, wait for it to end."""
    thread = threading.Thread(target=client.__exit__, args=(None, None, None), name="shutdown")
    thread.start()
    try:
        yield thread
    finally:
        thread.join(timeout=120)
        assert not thread.is_alive(), "the shutdown did not end"


def counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        jobs = session.scalar(sa.select(sa.func.count()).select_from(Job)) or 0
        events = session.scalar(sa.select(sa.func.count()).select_from(TimelineEvent)) or 0
    return jobs, events


def noted(db: Database, note: str) -> bool:
    with db.read() as session:
        query = sa.select(TimelineEvent.id).where(TimelineEvent.note == note).limit(1)
        return session.scalar(query) is not None


def test_a_job_or_drift_check_asked_for_during_shutdown_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The drift watch is the first component to stop; holding its stop open holds the shutdown
    # right after every component stopped taking work.
    stop_began, go_on = threading.Event(), threading.Event()
    original_stop = DriftWatch.stop

    async def held_stop(self: DriftWatch) -> None:
        stop_began.set()
        await anyio.to_thread.run_sync(go_on.wait)
        await original_stop(self)

    monkeypatch.setattr(DriftWatch, "stop", held_stop)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    client.headers.update(admin_headers(settings))
    register(client, local_node("m1", "master"))
    runtime = runtime_of(client.app)
    before = counts(runtime.db)
    try:
        with stopping_in_background(client):
            assert stop_began.wait(timeout=60)
            job = client.post("/commission/nodes", json={"nodes": ["m1"]})
            check = client.post("/drift/check")
            with pytest.raises(Unavailable) as remediation:
                runtime.jobs.submit(
                    kind=Kind.UPDATE,
                    names=["m1"],
                    host_group=None,
                    extra_vars={},
                    actor=drift.ACTOR,
                )
            during = counts(runtime.db)
            go_on.set()
    finally:
        go_on.set()
    for refused in (job, check):
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "Unavailable"
        assert "clusterm is stopping" in refused.json()["message"]
        assert "once it is back" in refused.json()["message"]
        assert refused.headers["Retry-After"] == "5"
    assert "clusterm is stopping" in remediation.value.message
    assert during == before  # no job row, no event: nothing was started


def test_the_active_job_ends_interrupted_before_the_database_closes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    uses = DbUses(monkeypatch)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    client.headers.update(admin_headers(settings))
    register(client, local_node("m1", "master"))
    job = client.post("/commission/nodes", json={"nodes": ["m1"], "extra_vars": {"sleep_s": 300}})
    assert job.status_code == 202, job.text
    wait_lines(client, "TASK [Wait]")
    runtime = runtime_of(client.app)
    with stopping_in_background(client):
        pass
    assert uses.disposed.is_set()
    # The job's end was written (and its nodes settled) while the database was open.
    assert ("write", False) in uses.log
    assert uses.after_dispose() == []
    with pytest.raises(DatabaseClosed), runtime.db.read():
        pass
    monkeypatch.undo()
    with TestClient(create_app(settings)) as again:
        again.headers.update(admin_headers(settings))
        ended = wait_finished(again, job.json()["id"])
        assert ended["status"] == "interrupted"
        assert states(again)["m1"] == "failed"


def test_a_drift_check_in_flight_is_waited_for_before_the_database_closes(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check whose source ignores the cancel (as a slow step past the playbook would): the
    # shutdown must wait for it, and the check then writes what it found before the database
    # closes. Were the watch not waited for, the database would close within the second the
    # source waits below, and the check's write would come after it.
    source_called, closed_early = threading.Event(), threading.Event()

    def slow_source(**kwargs: Any) -> dict[str, str]:
        source_called.set()
        wait_until(
            lambda: not runtime.background.running, timeout_s=60, what="the shutdown to begin"
        )
        if uses.disposed.wait(timeout=1.0):
            closed_early.set()
        return {"m1": "uid-1"}

    monkeypatch.setattr("app.drift.watch.list_cluster_nodes", slow_source)
    uses = DbUses(monkeypatch)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    client.headers.update(admin_headers(settings))
    register(client, local_node("m1", "master"))
    runtime = runtime_of(client.app)
    with runtime.db.write() as session:
        session.execute(sa.update(Node).where(Node.name == "m1").values(state="commissioned"))
    answer: list[Any] = []
    checking = threading.Thread(target=lambda: answer.append(client.post("/drift/check")))
    checking.start()
    assert source_called.wait(timeout=60)
    with stopping_in_background(client):
        pass
    checking.join(timeout=60)
    assert not closed_early.is_set(), "the database closed while a drift check was running"
    assert uses.after_dispose() == []
    assert uses.log[-1] == ("dispose", False)
    assert ("write", False) in uses.log  # the check's findings, written before the close
    assert len(answer) == 1
    assert answer[0].status_code == 200, answer[0].text
    assert answer[0].json()["outcome"] == "checked"


def test_a_start_up_that_fails_half_way_stops_what_it_started(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_start(self: DriftWatch) -> None:
        raise RuntimeError("the drift watch could not start")

    monkeypatch.setattr(DriftWatch, "start", broken_start)
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="could not start"), TestClient(app):
        pass
    runtime = runtime_of(app)
    assert not runtime.background.running
    # The job worker, retention and the revert worker had started: all stopped again.
    assert not [t for t in threading.enumerate() if t.name == "timeline-retention"]
    with pytest.raises(Unavailable):
        runtime.jobs.submit(kind=Kind.UPDATE, names=[], host_group=None, extra_vars={}, actor="t")
    with pytest.raises(DatabaseClosed), runtime.db.read():
        pass


def retention_threads() -> int:
    return sum(t.name == "timeline-retention" for t in threading.enumerate())


def test_the_background_group_stops_and_starts_again_while_the_app_runs(
    data_dir: Path, db_url: str
) -> None:
    settings = job_settings(data_dir, db_url, timeline_max_events=1000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(admin_headers(settings))
        register(client, local_node("m1", "master"))
        runtime: Runtime = runtime_of(client.app)
        portal = client.portal
        assert portal is not None
        # A commission the first time round, an update of the node it commissioned the second.
        for path in ("/commission/nodes", "/update/nodes"):
            portal.call(runtime.background.stop)
            assert not runtime.background.running
            # A job asked for meanwhile is queued, as on a replica that does not lead: it runs
            # once the background work runs again. A drift check needs the worker: refused.
            queued = client.post(path, json={"nodes": ["m1"]})
            assert queued.status_code == 202, queued.text
            assert queued.json()["status"] == "queued"
            assert client.post("/drift/check").status_code == 503
            assert retention_threads() == 0
            # Ordinary events beyond the cap, written while retention is stopped...
            with runtime.db.write() as session:
                for n in range(1010):
                    timeline.record_event(
                        session=session, action="node", reason="Noted", result=Result.SUCCEEDED,
                        note=f"{path} {n}",
                    )  # fmt: skip
            assert client.get(f"/jobs/{queued.json()['id']}").json()["status"] == "queued"
            oldest = f"{path} 0"

            portal.call(runtime.background.start)
            assert runtime.background.running
            assert retention_threads() == 1
            # ... are purged once it runs again (it purges as it starts). The queued job runs
            # meanwhile and adds events of its own, so the proof is the oldest event gone.
            wait_until(
                lambda o=oldest: not noted(runtime.db, o),
                timeout_s=60,
                what="retention to purge after the restart",
            )
            assert wait_finished(client, queued.json()["id"])["status"] == "successful"
            assert client.post("/drift/check").status_code == 200


def test_an_event_on_a_database_without_the_timeline_listeners_is_refused(db_url: str) -> None:
    # Without the listeners the queued event would never be written: a silent loss.
    upgrade(db_url)
    bare = Database(db_url)
    try:
        with (
            pytest.raises(timeline.NotAttached, match=r"timeline\.service\.attach"),
            bare.write() as session,
        ):
            timeline.record_event(
                session=session, action="node", reason="Noted", result=Result.SUCCEEDED
            )
    finally:
        bare.dispose()
    attached = timeline.attach(Database(db_url))
    try:
        with attached.write() as session:
            timeline.record_event(
                session=session, action="node", reason="Noted", result=Result.SUCCEEDED
            )
        assert counts(attached) == (0, 1)
    finally:
        attached.dispose()
