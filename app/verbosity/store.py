"""The database side of a verbosity operation: which targets, what is known, what happened.

Every function here is synchronous and runs in a worker thread. An operation reads what it needs
in one transaction, sends without holding any, then writes every outcome and its timeline event in
one transaction, so a fan-out to a thousand nodes costs two round trips to the database, not two
thousand, and the levels and the audit trail commit together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.nodes.lifecycle import State
from app.nodes.models import Node
from app.timeline import service as timeline
from app.verbosity.forward import Outcome
from app.verbosity.models import VerbosityLevel
from app.verbosity.registry import Registry, Target
from app.verbosity.schemas import GroupSelection, LevelRead, Selection

ACTION = "verbosity"
SYSTEM_ACTOR = "clusterm"


@dataclass(frozen=True)
class Step:
    """What to send to one target, and what clusterm knew about it before."""

    target: Target
    level: int
    previous: int  # the level clusterm last set there, else the baseline
    revert_to: int  # where a revert goes: a pending revert's destination, else `previous`
    attempts: int = 0
    requested_by: str | None = None


def _apiserver_node(session: Session, registry: Registry) -> Node | None:
    query = sa.select(Node)
    if registry.apiserver_node:
        query = query.where(Node.name == registry.apiserver_node)
    else:
        query = query.where(Node.host_group == "master").order_by(Node.name).limit(1)
    return session.scalar(query)


def resolve(
    *, session: Session, registry: Registry, component: str, selection: Selection
) -> list[Target]:
    """The targets of a change; every named node must exist, or nothing is sent at all."""
    spec = registry.get(component)
    query = sa.select(Node).order_by(Node.name)
    if isinstance(selection, list):
        nodes = list(session.scalars(query.where(Node.name.in_(selection))))
        missing = sorted(set(selection) - {n.name for n in nodes})
        if missing:
            raise NotFound(
                f"no node named {', '.join(map(repr, missing[:10]))} in the inventory; nothing "
                "was sent. List the nodes with GET /info/nodes",
                nodes=missing,
            )
    else:
        groups = (selection.group,) if isinstance(selection, GroupSelection) else spec.host_groups
        query = query.where(Node.host_group.in_(groups), Node.state != State.DECOMMISSIONED.value)
        nodes = list(session.scalars(query))
        if not nodes:
            raise NotFound(
                f"no node in group {' or '.join(groups)} (decommissioned nodes excluded) to "
                f"change {component} on",
                groups=list(groups),
            )
    apiserver = _apiserver_node(session, registry) if spec.via_apiserver else None
    return [registry.target(spec, node, apiserver=apiserver) for node in nodes]


def _rows(
    session: Session, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], VerbosityLevel]:
    out: dict[tuple[str, str], VerbosityLevel] = {}
    by_component: dict[str, list[str]] = {}
    for component, node in keys:
        by_component.setdefault(component, []).append(node)
    for component, nodes in by_component.items():
        query = sa.select(VerbosityLevel).where(
            VerbosityLevel.component == component, VerbosityLevel.node_name.in_(nodes)
        )
        out.update({(r.component, r.node_name): r for r in session.scalars(query)})
    return out


def known_levels(
    *, session: Session, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], VerbosityLevel]:
    out = _rows(session, keys)
    session.expunge_all()  # handed to the event loop as plain snapshots
    return out


def _pending(row: VerbosityLevel | None) -> int | None:
    return row.revert_to if row is not None and row.revert_at is not None else None


def plan_change(
    targets: Sequence[Target], known: dict[tuple[str, str], VerbosityLevel], level: int
) -> list[Step]:
    steps = []
    for target in targets:
        row = known.get(target.key)
        previous = row.level if row else target.baseline_level
        pending = _pending(row)
        steps.append(Step(target, level, previous, previous if pending is None else pending))
    return steps


def _event(
    session: Session, step: Step, outcome: Outcome, *, reason: str, actor: str, **extra: object
) -> None:
    severity = "audit" if outcome.ok else "warning"
    severity = str(extra.pop("severity", severity))
    result = str(extra.pop("result", "succeeded" if outcome.ok else "failed"))
    details: dict[str, object] = {"component": step.target.component, "status": outcome.status}
    details.update(extra)
    timeline.record_event(
        session=session,
        action=ACTION,
        reason=reason,
        result=result,
        severity=severity,
        node=None if step.target.gone else step.target.node,
        actor=actor,
        from_state=str(step.previous),
        to_state=str(step.level),
        note=outcome.message,
        details=details,
        attempt=step.attempts + 1 if reason == "VerbosityReverted" else None,
    )


def _upsert(
    session: Session, rows: dict[tuple[str, str], VerbosityLevel], step: Step, **values: object
) -> None:
    row = rows.get(step.target.key)
    if row is None:
        row = VerbosityLevel(component=step.target.component, node_name=step.target.node)
        session.add(row)
        rows[step.target.key] = row
    for name, value in values.items():
        setattr(row, name, value)


def record_change(
    *,
    session: Session,
    steps: Sequence[Step],
    outcomes: Sequence[Outcome],
    actor: str,
    now: dt.datetime,
    ttl_s: int,
) -> None:
    rows = _rows(session, [s.target.key for s in steps])
    reverts_at = now + dt.timedelta(seconds=ttl_s) if ttl_s else None
    for step, outcome in zip(steps, outcomes, strict=True):
        if outcome.ok:
            # The new change replaces any pending revert (or, without a ttl, cancels it).
            _upsert(
                session, rows, step,
                level=step.level, previous_level=step.previous, set_by=actor, set_at=now,
                revert_to=step.revert_to if reverts_at else None, revert_at=reverts_at,
                revert_attempts=0, last_error=None,
            )  # fmt: skip
        extra = {"ttl_seconds": ttl_s, "reverts_to": step.revert_to} if ttl_s else {}
        _event(session, step, outcome, reason="VerbositySet", actor=actor, **extra)


def record_reset(
    *,
    session: Session,
    steps: Sequence[Step],
    outcomes: Sequence[Outcome],
    actor: str,
    now: dt.datetime,
    reason: str,
    retry_s: float,
    max_attempts: int,
) -> None:
    """Record reverts: asked for (`VerbosityReset`) or due (`VerbosityReverted`, retried)."""
    rows = _rows(session, [s.target.key for s in steps])
    automatic = reason == "VerbosityReverted"
    for step, outcome in zip(steps, outcomes, strict=True):
        row = rows.get(step.target.key)
        extra: dict[str, object] = {}
        if step.requested_by:
            extra["requested_by"] = step.requested_by
        if outcome.ok:
            _upsert(
                session, rows, step,
                level=step.level, previous_level=step.previous, set_by=actor, set_at=now,
                revert_to=None, revert_at=None, revert_attempts=0, last_error=None,
            )  # fmt: skip
        elif step.target.gone:
            if row is not None:
                session.delete(row)
        elif automatic and row is not None:
            attempts = step.attempts + 1
            row.revert_attempts = attempts
            row.last_error = outcome.message
            if attempts >= max_attempts:
                row.revert_at = None
                extra.update(result="failed", severity="error", gave_up_after=attempts)
            else:
                delay = min(retry_s * 2 ** (attempts - 1), 3600.0)
                row.revert_at = now + dt.timedelta(seconds=delay)
                extra.update(result="retrying", retry_at=row.revert_at.isoformat())
        _event(session, step, outcome, reason=reason, actor=actor, **extra)


def _targets_of_rows(
    session: Session, registry: Registry, rows: Sequence[VerbosityLevel]
) -> dict[tuple[str, str], Target]:
    names = {r.node_name for r in rows}
    nodes = {n.name: n for n in session.scalars(sa.select(Node).where(Node.name.in_(names)))}
    apiserver = _apiserver_node(session, registry)
    out = {}
    for row in rows:
        node = nodes.get(row.node_name)
        key = (row.component, row.node_name)
        if node is None or row.component not in registry.components:
            out[key] = registry.gone(row.component, row.node_name)
        else:
            spec = registry.get(row.component)
            out[key] = registry.target(spec, node, apiserver=apiserver)
    return out


def plan_reset(
    *,
    session: Session,
    registry: Registry,
    component: str | None,
    nodes: Sequence[str] | None,
) -> list[Step]:
    """Put levels back: to a pending revert's destination, else to the baseline.

    With a component and nodes, those targets (known to clusterm or not: a level raised by hand
    with curl is reset too); otherwise every known level that differs from its baseline or has a
    revert pending, optionally narrowed by component or nodes.
    """
    if component is not None:
        registry.get(component)
    if component is not None and nodes:
        targets = resolve(
            session=session, registry=registry, component=component, selection=list(nodes)
        )
        known = _rows(session, [t.key for t in targets])
        steps = []
        for target in targets:
            row = known.get(target.key)
            pending = _pending(row)
            level = target.baseline_level if pending is None else pending
            previous = row.level if row else target.baseline_level
            steps.append(Step(target, level, previous, level))
        return steps
    query = sa.select(VerbosityLevel).order_by(VerbosityLevel.component, VerbosityLevel.node_name)
    if component is not None:
        query = query.where(VerbosityLevel.component == component)
    if nodes:
        query = query.where(VerbosityLevel.node_name.in_(nodes))
    listed = list(session.scalars(query))
    by_key = _targets_of_rows(session, registry, listed)
    steps = []
    for row in listed:
        target = by_key[(row.component, row.node_name)]
        pending = _pending(row)
        level = target.baseline_level if pending is None else pending
        if pending is not None or row.level != level or target.gone:
            steps.append(Step(target, level, row.level, level))
    return steps


def due_reverts(
    *, session: Session, registry: Registry, now: dt.datetime, limit: int
) -> list[Step]:
    query = (
        sa.select(VerbosityLevel)
        .where(VerbosityLevel.revert_at <= now)
        .order_by(VerbosityLevel.revert_at)
        .limit(limit)
    )
    rows = list(session.scalars(query))
    targets = _targets_of_rows(session, registry, rows)
    return [
        Step(
            targets[(r.component, r.node_name)],
            r.revert_to
            if r.revert_to is not None
            else targets[(r.component, r.node_name)].baseline_level,
            r.level,
            r.revert_to if r.revert_to is not None else r.level,
            attempts=r.revert_attempts,
            requested_by=r.set_by,
        )
        for r in rows
    ]


def next_revert_at(*, session: Session) -> dt.datetime | None:
    return session.scalar(sa.select(sa.func.min(VerbosityLevel.revert_at)))


def list_levels(
    *, session: Session, registry: Registry, component: str | None, node: str | None
) -> list[LevelRead]:
    query = sa.select(VerbosityLevel).order_by(VerbosityLevel.node_name, VerbosityLevel.component)
    if component is not None:
        registry.get(component)
        query = query.where(VerbosityLevel.component == component)
    if node is not None:
        query = query.where(VerbosityLevel.node_name == node)
    rows = list(session.scalars(query))
    targets = _targets_of_rows(session, registry, rows)
    return [
        LevelRead(
            component=r.component,
            node=r.node_name,
            level=r.level,
            previous_level=r.previous_level,
            baseline_level=targets[(r.component, r.node_name)].baseline_level,
            set_by=r.set_by,
            set_at=r.set_at,
            revert_to=r.revert_to,
            reverts_at=r.revert_at,
            revert_attempts=r.revert_attempts,
            last_error=r.last_error,
        )
        for r in rows
    ]
