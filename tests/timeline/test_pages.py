"""A page read the short way (app.timeline.pages) is byte for byte what the ORM and the response
model would have sent, on every database, for every kind of filter and value."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter

from app.db import Database
from app.timeline import pages
from app.timeline import service as timeline
from app.timeline.filters import TimelineFilter
from app.timeline.models import TimelineEvent
from app.timeline.schemas import EventRead, TimelinePage
from app.timeline.vocabulary import Result, Severity

PAGE = TypeAdapter(TimelinePage)


def reference(db: Database, filters: TimelineFilter, limit: int, before_id: int | None) -> bytes:
    """The page through the ORM and the response model, as the route answered before."""
    ev = TimelineEvent
    query = sa.select(ev).where(*filters.where())
    if before_id is not None:
        query = query.where(ev.id < before_id)
    with db.read() as session:
        rows = list(session.scalars(query.order_by(ev.id.desc()).limit(limit + 1)))
        oldest, latest = timeline.bounds(session=session)
    page = TimelinePage(
        items=[EventRead.of(row) for row in rows[:limit]],
        next_before_id=rows[limit - 1].id if len(rows) > limit else None,
        next_after_id=rows[0].id if rows else (latest if before_id is None else None),
        oldest_id=oldest,
        latest_id=latest,
    )
    return PAGE.dump_json(page)


def short(db: Database, filters: TimelineFilter, limit: int, before_id: int | None) -> bytes:
    with pages.connect(db) as connection:
        return pages.read_page(
            connection=connection, filters=filters, limit=limit, before_id=before_id
        ).json()


@pytest.fixture
def varied(store: Database) -> list[int]:
    """Events with every kind of value a page shows; their ids, oldest first."""
    sqlite = store.engine.dialect.name == "sqlite"
    # PostgreSQL's JSON has no infinity; SQLite keeps what json.dumps writes (`Infinity`).
    infinity = {"inf": float("inf")} if sqlite else {}
    odd: list[dict[str, Any]] = [
        {"details": {"rc": 0, "big": 2**70, "tiny": 5e-324, "huge": 1e16, **infinity}},
        {"details": {"text": 'é😀 "quoted" \\ back\nslash\t\u0001\u2028'}, "note": "two\nlines"},
        {"details": {"nested": {"list": [1, None, True, 1.5]}}, "severity": Severity.AUDIT},
        {"details": None, "note": None, "actor": None, "node": None},
        {"result": Result.FAILED, "severity": Severity.ERROR, "job_id": 7, "attempt": 2},
        {"from_state": "provisioning", "to_state": "commissioned", "duration_ms": 0},
    ]
    with store.write() as session:
        for i in range(60):
            fields = {
                "action": ("commission", "update", "token")[i % 3],
                "reason": ("JobSucceeded", "PlaybookFailed")[i % 2],
                "result": Result.SUCCEEDED,
                "node": f"node-{i % 4}",
                "actor": ("ops", "admin")[i % 2],
                "job_id": i // 10 + 1,
                **odd[i % len(odd)],
            }
            timeline.record_event(session=session, **fields)
    # A time whose microseconds are 0, and one stored without any (another writer's form).
    with store.write() as session:
        session.execute(
            sa.insert(TimelineEvent).values(
                occurred_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                action="update",
                reason="NodeChanged",
                result=Result.SUCCEEDED,
                severity=Severity.INFO,
                node_name="node-1",
            )
        )
    if sqlite:
        with store.engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE timeline_event SET occurred_at = '2026-01-02 03:04:06' "
                "WHERE id = (SELECT min(id) FROM timeline_event)"
            )
    with store.read() as session:
        return list(session.scalars(sa.select(TimelineEvent.id).order_by(TimelineEvent.id)))


FILTERS = [
    TimelineFilter(),
    TimelineFilter(nodes=["node-1"]),
    TimelineFilter(nodes=["node-1", "node-3"]),
    TimelineFilter(nodes=["nowhere"]),
    TimelineFilter(actions=["token"], reasons=["PlaybookFailed"]),
    TimelineFilter(results=[Result.FAILED], actors=["ops", "admin"]),
    TimelineFilter(min_severity=Severity.WARNING),
    TimelineFilter(min_severity=Severity.DEBUG, job_id=3),
    TimelineFilter(audit=True),
    TimelineFilter(audit=False, nodes=["node-2"]),
    TimelineFilter(
        since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    ),
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f.params()) or "none")
@pytest.mark.parametrize("limit", [1, 7, 100])
def test_each_page_is_the_models_bytes(
    store: Database, varied: list[int], filters: TimelineFilter, limit: int
) -> None:
    for before_id in (None, varied[-1] + 1, varied[len(varied) // 2], varied[3], varied[0], 0):
        assert short(store, filters, limit, before_id) == reference(
            store, filters, limit, before_id
        ), (filters, limit, before_id)


def test_an_empty_timeline_has_no_bounds(store: Database) -> None:
    for before_id in (None, 5):
        assert short(store, TimelineFilter(), 30, before_id) == reference(
            store, TimelineFilter(), 30, before_id
        )


def test_the_typed_page_holds_the_typed_values(store: Database, varied: list[int]) -> None:
    # The text format and the support bundle read the model; it must be the model's values.
    with store.read() as session:
        page = timeline.list_timeline(session=session, filters=TimelineFilter(), limit=100)
    assert [e.id for e in page.items] == varied[::-1]
    for event in page.items:
        assert isinstance(event.result, Result)
        assert isinstance(event.severity, Severity)
        assert event.occurred_at.tzinfo == dt.UTC
        assert EventRead.model_validate(event.model_dump()) == event


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f.params()) or "none")
def test_params_name_exactly_what_where_binds(filters: TimelineFilter) -> None:
    # A page's compiled statement is reused with `params()`: the two must agree.
    compiled = sa.select(TimelineEvent.id).where(*filters.where()).compile()
    assert compiled.params == filters.params()
