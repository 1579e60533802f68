"""Which events a reader asked for: the query parameters, checked and turned into SQL.

Every refusal is a 422 that names the parameter, in the shape the rest of the API uses.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from app.db import utcnow
from app.errors import ValidationFailed
from app.timeline.models import TimelineEvent
from app.timeline.vocabulary import ACTION_RE, REASON_RE, Result, Severity

_DURATION_RE = re.compile(r"^(?:\d+[smhdw])+$")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
# Longer than any ISO 8601 time or any duration back to year 1; and int() refuses numbers of
# more than 4,300 digits with an error of its own.
_MAX_TIME_CHARS = 64
# Query parameters are outside data: checked against the members' values before they become
# members (a StrEnum member is equal to, and hashes as, its value).
_RESULTS = frozenset(Result)
_SEVERITIES = frozenset(Severity)


def refuse(param: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{param}: {reason}", fields=[{"field": param, "reason": reason}])


def parse_time(param: str, value: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """ISO 8601 (UTC unless it says otherwise), or a duration back from now: `1h30m`, `7d`."""
    text = value.strip()
    shown = _shown(value)
    if len(text) > _MAX_TIME_CHARS:
        raise refuse(param, f"{shown} is too long for a time or a duration")
    if _DURATION_RE.match(text):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        try:
            return (now or utcnow()) - dt.timedelta(seconds=seconds)
        except OverflowError:
            raise refuse(param, f"{shown} reaches back before year 1") from None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise refuse(
            param,
            f"{shown} is neither an ISO 8601 time (2026-11-21T10:00:00Z) "
            "nor a duration such as 30m, 1h, 7d",
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        # 9999-12-31T23:00:00-14:00 is in year 10000 in UTC, which no datetime holds.
        raise refuse(param, f"{shown} is outside years 1-9999 once converted to UTC") from None


def _shown(value: str) -> str:
    """The value as an error message quotes it: whole when short, its head when not."""
    return repr(value) if len(value) <= 64 else f"{value[:40]!r}… ({len(value)} characters)"


def check_node_name(param: str, name: str) -> None:
    # Control characters are never part of a node name, and PostgreSQL refuses a NUL in any
    # string it is sent: refused here, by name, not by the driver as a 500.
    if not name or len(name) > 253 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise refuse(
            param, f"{_shown(name)} is not a node name (1-253 characters, no control characters)"
        )


# As long as the column that stores an actor: a longer value cannot match any event.
ACTOR_MAX = 64


def check_actor(param: str, actor: str) -> None:
    # An actor is a token's name, or the daemon's own ("clusterm"); matched exactly.
    if not actor or len(actor) > ACTOR_MAX or any(ord(c) < 32 or ord(c) == 127 for c in actor):
        raise refuse(
            param,
            f"{_shown(actor)} is not an actor (a token's name, 1-{ACTOR_MAX} characters, "
            "no control characters)",
        )


def _checked(param: str, values: Sequence[str], pattern: re.Pattern[str], what: str) -> list[str]:
    for value in values:
        if not pattern.match(value):
            raise refuse(param, f"{value!r} is not {what}")
    return list(values)


@dataclass(frozen=True)
class TimelineFilter:
    nodes: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    min_severity: Severity | None = None
    job_id: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    audit: bool | None = None

    @classmethod
    def parse(
        cls,
        *,
        nodes: Sequence[str] = (),
        actions: Sequence[str] = (),
        reasons: Sequence[str] = (),
        results: Sequence[str] = (),
        actors: Sequence[str] = (),
        min_severity: str | None = None,
        job_id: int | None = None,
        since: str | None = None,
        until: str | None = None,
        audit: bool | None = None,
    ) -> TimelineFilter:
        for name in nodes:
            check_node_name("node", name)
        for actor in actors:
            check_actor("actor", actor)
        for result in results:
            if result not in _RESULTS:
                raise refuse("result", f"{result!r} is not one of {', '.join(Result)}")
        severity = None
        if min_severity is not None:
            if min_severity not in _SEVERITIES:
                raise refuse(
                    "min_severity", f"{min_severity!r} is not one of {', '.join(Severity)}"
                )
            severity = Severity(min_severity)
        now = utcnow()
        start = parse_time("since", since, now=now) if since is not None else None
        end = parse_time("until", until, now=now) if until is not None else None
        if start is not None and end is not None and start >= end:
            raise refuse("until", f"{until!r} is not after since={since!r}")
        return cls(
            nodes=list(nodes),
            actions=_checked("action", actions, ACTION_RE, "an action (such as commission)"),
            reasons=_checked("reason", reasons, REASON_RE, "a CamelCase reason"),
            results=[Result(r) for r in results],
            actors=list(actors),
            min_severity=severity,
            job_id=job_id,
            since=start,
            until=end,
            audit=audit,
        )

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The conditions, each value a named bound parameter (see `params`)."""
        ev = TimelineEvent
        out: list[sa.ColumnElement[bool]] = []
        if self.nodes:
            out.append(
                ev.node_name.in_(_binds(ev.node_name, "node", self.nodes))
                if len(self.nodes) > 1
                else ev.node_name == _bind(ev.node_name, "node_0", self.nodes[0])
            )
        if self.actions:
            out.append(ev.action.in_(_binds(ev.action, "action", self.actions)))
        if self.reasons:
            out.append(ev.reason.in_(_binds(ev.reason, "reason", self.reasons)))
        if self.results:
            out.append(ev.result.in_(_binds(ev.result, "result", self.results)))
        if self.actors:
            out.append(ev.actor.in_(_binds(ev.actor, "actor", self.actors)))
        if self.min_severity is not None and self.min_severity != Severity.DEBUG:
            severities = Severity.at_least(self.min_severity)
            out.append(ev.severity.in_(_binds(ev.severity, "severity", severities)))
        if self.job_id is not None:
            out.append(ev.job_id == _bind(ev.job_id, "job", self.job_id))
        if self.since is not None:
            out.append(ev.occurred_at >= _bind(ev.occurred_at, "since", self.since))
        if self.until is not None:
            out.append(ev.occurred_at < _bind(ev.occurred_at, "until", self.until))
        if self.audit is not None:
            out.append(ev.audit == _bind(ev.audit, "audit", self.audit))
        return out

    def params(self) -> dict[str, Any]:
        """The values of `where()`'s parameters by name, in its order, without building any SQL.

        Their names are the statement's shape (which conditions, how many values each): a page
        reader compiles a shape once and runs it again with only these values (`app.timeline.
        pages`). Must name exactly what `where()` binds; tests/timeline/test_pages.py holds them
        to it.
        """
        out: dict[str, Any] = {}
        if self.nodes:
            _number(out, "node", self.nodes)
        _number(out, "action", self.actions)
        _number(out, "reason", self.reasons)
        _number(out, "result", self.results)
        _number(out, "actor", self.actors)
        if self.min_severity is not None and self.min_severity != Severity.DEBUG:
            _number(out, "severity", Severity.at_least(self.min_severity))
        for name, value in (
            ("job", self.job_id),
            ("since", self.since),
            ("until", self.until),
            ("audit", self.audit),
        ):
            if value is not None:
                out[name] = value
        return out


def _bind(column: Any, name: str, value: Any) -> sa.BindParameter[Any]:
    # The column's own type: its bind processing (a UTC time stored naive on SQLite, an enum
    # member stored as its value) applies as it would to a literal compared with the column.
    return sa.bindparam(name, value, type_=column.type)


def _binds(column: Any, name: str, values: Sequence[Any]) -> list[sa.BindParameter[Any]]:
    return [_bind(column, f"{name}_{i}", value) for i, value in enumerate(values)]


def _number(out: dict[str, Any], name: str, values: Sequence[Any]) -> None:
    for i, value in enumerate(values):
        out[f"{name}_{i}"] = value
