"""Which jobs a reader asked for (`GET /jobs?node=&kind=&status=&since=`), checked and turned
into SQL that runs the same on SQLite and PostgreSQL.

Every refusal is a 422 that names the parameter and, for a closed vocabulary, its values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from app.errors import ValidationFailed
from app.jobs.models import Job
from app.jobs.vocabulary import Kind, Status
from app.timeline import service as timeline

# Query parameters are outside data: checked against the members' values before they become
# members (a StrEnum member is equal to, and hashes as, its value).
_KINDS = frozenset(Kind)
_STATUSES = frozenset(Status)


def _refuse(param: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{param}: {reason}", fields=[{"field": param, "reason": reason}])


@dataclass(frozen=True)
class JobFilter:
    node: str | None = None
    kinds: list[Kind] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    since: dt.datetime | None = None

    @classmethod
    def parse(
        cls,
        *,
        node: str | None = None,
        kinds: Sequence[str] = (),
        statuses: Sequence[str] = (),
        since: str | None = None,
    ) -> JobFilter:
        if node is not None:
            timeline.check_node_name("node", node)
        for kind in kinds:
            if kind not in _KINDS:
                raise _refuse("kind", f"{kind!r} is not one of {', '.join(Kind)}")
        for status in statuses:
            if status not in _STATUSES:
                raise _refuse("status", f"{status!r} is not one of {', '.join(Status)}")
        return cls(
            node=node,
            kinds=[Kind(k) for k in kinds],
            statuses=[Status(s) for s in statuses],
            since=None if since is None else timeline.parse_time("since", since),
        )

    def where(self, dialect: str) -> list[sa.ColumnElement[bool]]:
        """The conditions, for the database named by `dialect` (the node's test differs)."""
        out: list[sa.ColumnElement[bool]] = []
        if self.node is not None:
            out.append(_includes_node(dialect, self.node))
        if self.kinds:
            out.append(Job.kind.in_(self.kinds))
        if self.statuses:
            out.append(Job.status.in_(self.statuses))
        if self.since is not None:
            out.append(Job.created_at >= self.since)
        return out


def _includes_node(dialect: str, name: str) -> sa.ColumnElement[bool]:
    """`job.nodes` (a JSON list of names) holds `name`: the whole element, never a substring
    (node `w1` is not in a job on `w10`)."""
    if dialect == "postgresql":
        # JSONB containment, `nodes @> '["w1"]'`: a GIN index on the column would serve it.
        return sa.type_coerce(Job.nodes, JSONB).contains([name])
    # SQLite keeps JSON as text: one row per element of the list.
    element = sa.func.json_each(Job.nodes).table_valued("value")
    return sa.select(sa.literal(1)).select_from(element).where(element.c.value == name).exists()
