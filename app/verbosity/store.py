"""The database side of a verbosity operation: which targets, what is known, what happened.

Every function here is synchronous and runs in a worker thread, one transaction per call, so a
fan-out to a thousand nodes costs a few round trips to the database, not thousands, and the
levels and the audit trail commit together.

A change is written before it is sent, so that a crash cannot leave a raised level with no revert:

1. `begin_change` reads what clusterm knew and writes, for every target it will send to, the row
   that success would leave (the new level with its revert) marked in flight in `last_error`.
   A permanent change (ttl 0) over a pending revert keeps that revert until it succeeds.
2. The PUTs are sent.
3. `record_change` writes each outcome: on success the row as intended; when the component
   refused or nothing reached it, the row as it was before (or none); when the request went out
   and no answer came (a timeout after sending, a broken exchange), the component may have taken
   the level, so the row keeps it with a revert due at once to where a revert would go. One
   timeline event per target, as for every outcome.

If clusterm dies between 1 and 3, the row written in 1 holds the revert, which the revert worker
runs when it is due, after the restart too, and which says on the timeline that it follows an
interrupted change. A revert or a reset is not written ahead: the row already holds what it puts
back, and running one twice changes nothing.

Reverts and resets of known levels never go where a component's credentials no longer belong
(see `registry.Registry.unreachable`): a node deleted from the inventory, decommissioned, back
to registered (re-registered under the same name), or moved out of the component's host groups
gets nothing; the level is recorded as forgotten on the timeline and its row is dropped. A failed
or provisioning node still gets its revert. A row that cannot become a target (an address stored
before the address rule was strict, a bad `clusterm_verbosity` override) fails for that target
alone: a revert is retried as any failed revert, and the list shows the row as it is.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.nodes import service as nodes
from app.nodes.service import NodeView
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity
from app.verbosity.forward import Outcome
from app.verbosity.models import VerbosityLevel
from app.verbosity.registry import Component, Registry, Target
from app.verbosity.schemas import GroupSelection, LevelRead, Selection, SkippedNode

log = logging.getLogger("clusterm.verbosity")

ACTION = "verbosity"
SYSTEM_ACTOR = "clusterm"
IN_FLIGHT = "in flight: "  # how `last_error` marks a change sent but not yet recorded
_COLUMNS = tuple(c.key for c in VerbosityLevel.__table__.columns if c.key != "id")

Key = tuple[str, str]
Snapshot = Mapping[str, object]


@dataclass(frozen=True)
class Step:
    """What to send to one target, and what clusterm knew about it before."""

    target: Target
    level: int
    previous: int  # the level clusterm last set there, else the baseline
    revert_to: int  # where a revert goes: a pending revert's destination, else `previous`
    attempts: int = 0
    requested_by: str | None = None
    before: Snapshot | None = None  # a change's row as it was (None: there was none)
    interrupted: bool = False  # a revert that follows a change clusterm did not see through


@dataclass(frozen=True)
class Resolution:
    targets: list[Target]
    skipped: list[SkippedNode] = field(default_factory=list)


def _apiserver_node(session: Session, registry: Registry) -> NodeView | None:
    """The node whose apiserver relays kubelet calls: the configured one, else the first master
    (`nodes.first_master`); the registry checks it may be used."""
    if registry.apiserver_node:
        found = nodes.find_nodes(session=session, names=[registry.apiserver_node])
        return found.get(registry.apiserver_node)
    return nodes.first_master(session=session)


def _named_nodes(session: Session, names: Sequence[str]) -> list[NodeView]:
    found = nodes.find_nodes(session=session, names=names)
    missing = sorted(set(names) - set(found))
    if missing:
        raise NotFound(
            f"no node named {', '.join(map(repr, missing[:10]))} in the inventory; nothing "
            "was sent. List the nodes with GET /info/nodes",
            nodes=missing,
        )
    return [found[name] for name in sorted(found)]


def _refuse(spec: Component, refused: Sequence[tuple[NodeView, str]], *, chosen: str) -> Conflict:
    reasons = "; ".join(reason for _, reason in refused[:10])
    more = f" (and {len(refused) - 10} more)" if len(refused) > 10 else ""
    return Conflict(
        f"{spec.name} is not reached on {len(refused)} of the nodes {chosen}, so nothing was sent: "
        f"{reasons}{more}. A component is reached only on nodes of its host_groups that are "
        "neither registered (never provisioned) nor decommissioned",
        component=spec.name,
        nodes=[
            {"node": n.name, "host_group": n.host_group, "state": n.state, "reason": reason}
            for n, reason in refused
        ],
    )


def resolve(
    *, session: Session, registry: Registry, component: str, selection: Selection
) -> Resolution:
    """The targets of a change. Every named node must exist and be able to run the component,
    or nothing is sent at all; "all" and a group leave out the nodes that cannot (`skipped`)."""
    spec = registry.get(component)
    if isinstance(selection, list):
        chosen = _named_nodes(session, selection)
        refused = [(n, r) for n in chosen if (r := registry.unreachable(spec, n)) is not None]
        if refused:
            raise _refuse(spec, refused, chosen="named")
        skipped: list[SkippedNode] = []
    else:
        groups = (selection.group,) if isinstance(selection, GroupSelection) else spec.host_groups
        candidates = nodes.list_nodes(session=session, host_groups=groups)
        if not candidates:
            raise NotFound(
                f"no node in group {' or '.join(groups)} to change {component} on",
                groups=list(groups),
            )
        chosen, skipped = [], []
        for node in candidates:
            reason = registry.unreachable(spec, node)
            if reason is None:
                chosen.append(node)
            else:
                skipped.append(SkippedNode(node=node.name, reason=reason))
        if not chosen:
            raise _refuse(
                spec,
                [(n, s.reason) for n, s in zip(candidates, skipped, strict=True)],
                chosen="selected",
            )
    apiserver = _apiserver_node(session, registry) if spec.via_apiserver else None
    return Resolution([_target(registry, spec, n, apiserver) for n in chosen], skipped)


def _target(
    registry: Registry, spec: Component, node: NodeView, apiserver: NodeView | None
) -> Target:
    try:
        return registry.target(spec, node, apiserver=apiserver)
    except Exception:
        # A row no rule foresaw must cost its own target, never the others or the whole list.
        log.exception("cannot resolve %s on node %r", spec.name, node.name)
        problem = f"clusterm cannot resolve {spec.name} on node {node.name!r}; see its log"
        return Target(spec.name, node.name, None, spec.baseline_level, spec.name, None, problem)


def _rows(session: Session, keys: Sequence[Key]) -> dict[Key, VerbosityLevel]:
    out: dict[Key, VerbosityLevel] = {}
    by_component: dict[str, list[str]] = {}
    for component, node in keys:
        by_component.setdefault(component, []).append(node)
    for component, names in by_component.items():
        query = sa.select(VerbosityLevel).where(
            VerbosityLevel.component == component, VerbosityLevel.node_name.in_(names)
        )
        out.update({(r.component, r.node_name): r for r in session.scalars(query)})
    return out


def _pending(row: VerbosityLevel | None) -> int | None:
    return row.revert_to if row is not None and row.revert_at is not None else None


def _snapshot(row: VerbosityLevel | None) -> Snapshot | None:
    return None if row is None else {name: getattr(row, name) for name in _COLUMNS}


def begin_change(
    *,
    session: Session,
    targets: Sequence[Target],
    level: int,
    ttl_s: int,
    actor: str,
    now: dt.datetime,
) -> list[Step]:
    """Plan a change and write it, revert included, before anything is sent."""
    rows = _rows(session, [t.key for t in targets])
    reverts_at = now + dt.timedelta(seconds=ttl_s) if ttl_s else None
    in_flight = (
        f"{IN_FLIGHT}V{level} sent by {actor} at {now.isoformat()}; until its answer is "
        "recorded (for good, if clusterm stopped meanwhile) whether it was taken is unknown"
    )
    steps = []
    for target in targets:
        row = rows.get(target.key)
        previous = row.level if row else target.baseline_level
        pending = _pending(row)
        revert_to = previous if pending is None else pending
        step = Step(target, level, previous, revert_to, before=_snapshot(row))
        steps.append(step)
        if target.problem:
            continue  # nothing will be sent
        revert_at = reverts_at
        if reverts_at is None and row is not None and pending is not None:
            revert_at = row.revert_at  # a permanent change cancels the revert only once it took
        _upsert(
            session, rows, step,
            level=level, previous_level=previous, set_by=actor, set_at=now,
            revert_to=revert_to if revert_at else None, revert_at=revert_at,
            revert_attempts=0, last_error=in_flight,
        )  # fmt: skip
    return steps


def _event_nodes(session: Session, steps: Sequence[Step]) -> dict[str, NodeView]:
    """The steps' nodes that exist, read in one query before any event is recorded: given a
    name, the timeline looks each node up on its own, a query per target (measured: two thirds
    of recording a 1,000-node change). A node deleted meanwhile is absent, and its events name it
    only, as they would by name."""
    return nodes.find_nodes(session=session, names={s.target.node for s in steps})


def _event(
    session: Session,
    step: Step,
    outcome: Outcome,
    *,
    reason: str,
    actor: str,
    extra: dict[str, object],
    node: NodeView | None,
    result: Result | None = None,
    severity: Severity | None = None,
) -> None:
    """Record one change or revert; `result` and `severity` default to what the outcome says.
    `node`: the step's node row (`_event_nodes`), None when it no longer exists."""
    if result is None:
        result = Result.SUCCEEDED if outcome.ok else Result.FAILED
    if severity is None:
        severity = Severity.AUDIT if outcome.ok else Severity.WARNING
    details: dict[str, object] = {"component": step.target.component, "status": outcome.status}
    details.update(extra)
    timeline.record_event(
        session=session,
        action=ACTION,
        reason=reason,
        result=result,
        severity=severity,
        node=node if node is not None else step.target.node,
        actor=actor,
        from_state=str(step.previous),
        to_state=str(step.level),
        note=outcome.message,
        details=details,
        attempt=step.attempts + 1 if reason == "VerbosityReverted" else None,
    )


def _upsert(
    session: Session, rows: dict[Key, VerbosityLevel], step: Step, **values: object
) -> None:
    row = rows.get(step.target.key)
    if row is None:
        row = VerbosityLevel(component=step.target.component, node_name=step.target.node)
        session.add(row)
        rows[step.target.key] = row
    state = row.__dict__
    for name, value in values.items():
        # Only what changes: a change recorded over the row written ahead of it differs in one
        # column, and each instrumented assignment costs the ORM an event and a history entry.
        if name not in state or state[name] != value:
            setattr(row, name, value)


def _restore(session: Session, rows: dict[Key, VerbosityLevel], step: Step) -> None:
    row = rows.get(step.target.key)
    if step.before is not None:
        _upsert(session, rows, step, **step.before)
    elif row is not None:
        session.delete(row)
        del rows[step.target.key]


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
    found = _event_nodes(session, steps)
    reverts_at = now + dt.timedelta(seconds=ttl_s) if ttl_s else None
    for step, outcome in zip(steps, outcomes, strict=True):
        extra: dict[str, object] = (
            {"ttl_seconds": ttl_s, "reverts_to": step.revert_to} if ttl_s else {}
        )
        if step.target.problem:
            pass  # nothing was written ahead, nothing was sent
        elif outcome.ok:
            # The new change replaces any pending revert (or, without a ttl, cancels it).
            _upsert(
                session, rows, step,
                level=step.level, previous_level=step.previous, set_by=actor, set_at=now,
                revert_to=step.revert_to if reverts_at else None, revert_at=reverts_at,
                revert_attempts=0, last_error=None,
            )  # fmt: skip
        elif outcome.uncertain:
            _upsert(
                session, rows, step,
                level=step.level, previous_level=step.previous, set_by=actor, set_at=now,
                revert_to=step.revert_to, revert_at=now, revert_attempts=0,
                last_error=outcome.message,
            )  # fmt: skip
            extra.update(reverts_to=step.revert_to, reverts_at=now.isoformat(), uncertain=True)
        else:
            _restore(session, rows, step)
        _event(
            session, step, outcome, reason="VerbositySet", actor=actor, extra=extra,
            node=found.get(step.target.node),
        )  # fmt: skip


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
    found = _event_nodes(session, steps)
    automatic = reason == "VerbosityReverted"
    for step, outcome in zip(steps, outcomes, strict=True):
        row = rows.get(step.target.key)
        extra: dict[str, object] = {}
        result: Result | None = None
        severity: Severity | None = None
        if step.requested_by:
            extra["requested_by"] = step.requested_by
        if step.interrupted:
            extra["after_interrupted_change"] = True
        if outcome.ok:
            _upsert(
                session, rows, step,
                level=step.level, previous_level=step.previous, set_by=actor, set_at=now,
                revert_to=None, revert_at=None, revert_attempts=0, last_error=None,
            )  # fmt: skip
        elif step.target.gone:
            if row is not None:
                session.delete(row)
            extra["forgotten"] = True
        elif automatic and row is not None:
            attempts = step.attempts + 1
            row.revert_attempts = attempts
            row.last_error = outcome.message
            if attempts >= max_attempts:
                row.revert_at = None
                result, severity = Result.FAILED, Severity.ERROR
                extra["gave_up_after"] = attempts
            else:
                delay = min(retry_s * 2 ** (attempts - 1), 3600.0)
                row.revert_at = now + dt.timedelta(seconds=delay)
                result = Result.RETRYING
                extra["retry_at"] = row.revert_at.isoformat()
        _event(
            session,
            step,
            outcome,
            reason=reason,
            actor=actor,
            extra=extra,
            node=found.get(step.target.node),
            result=result,
            severity=severity,
        )


def _targets_of_rows(
    session: Session, registry: Registry, rows: Sequence[VerbosityLevel]
) -> dict[Key, Target]:
    found = nodes.find_nodes(session=session, names={r.node_name for r in rows})
    needs_apiserver = any(
        registry.components[r.component].via_apiserver
        for r in rows
        if r.component in registry.components
    )
    apiserver = _apiserver_node(session, registry) if needs_apiserver else None
    out = {}
    for row in rows:
        node = found.get(row.node_name)
        key = (row.component, row.node_name)
        if node is None or row.component not in registry.components:
            out[key] = registry.gone(row.component, row.node_name)
        else:
            out[key] = _target(registry, registry.get(row.component), node, apiserver)
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
    with curl is reset too; a named node that cannot run the component is refused, 409, unless
    clusterm holds a level there, which is then forgotten); otherwise every known level that
    differs from its baseline or has a revert pending, optionally narrowed by component or nodes.
    """
    if component is not None:
        registry.get(component)
    if component is not None and nodes:
        spec = registry.get(component)
        named = _named_nodes(session, nodes)
        known = _rows(session, [(component, n.name) for n in named])
        refused = [
            (n, r)
            for n in named
            if (r := registry.unreachable(spec, n)) is not None and (component, n.name) not in known
        ]
        if refused:
            raise _refuse(spec, refused, chosen="named")
        apiserver = _apiserver_node(session, registry) if spec.via_apiserver else None
        steps = []
        for node in named:
            target = _target(registry, spec, node, apiserver)
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


def due_keys(*, session: Session, now: dt.datetime, limit: int) -> list[Key]:
    """The targets whose revert is due, earliest first (to lock before `due_reverts`)."""
    query = (
        sa.select(VerbosityLevel.component, VerbosityLevel.node_name)
        .where(VerbosityLevel.revert_at <= now)
        .order_by(VerbosityLevel.revert_at)
        .limit(limit)
    )
    return [(component, node) for component, node in session.execute(query)]


def due_reverts(
    *, session: Session, registry: Registry, now: dt.datetime, keys: Sequence[Key]
) -> list[Step]:
    """The reverts among `keys` still due, read again once they are locked: a change that ran
    meanwhile may have replaced or cancelled one."""
    known = _rows(session, keys)
    rows = [known[k] for k in keys if k in known and _is_due(known[k], now)]
    targets = _targets_of_rows(session, registry, rows)
    steps = []
    for r in rows:
        target = targets[(r.component, r.node_name)]
        steps.append(
            Step(
                target,
                r.revert_to if r.revert_to is not None else target.baseline_level,
                r.level,
                r.revert_to if r.revert_to is not None else r.level,
                attempts=r.revert_attempts,
                requested_by=r.set_by,
                interrupted=(r.last_error or "").startswith(IN_FLIGHT),
            )
        )
    return steps


def _is_due(row: VerbosityLevel, now: dt.datetime) -> bool:
    return row.revert_at is not None and row.revert_at <= now


def next_revert_at(*, session: Session) -> dt.datetime | None:
    return session.scalar(sa.select(sa.func.min(VerbosityLevel.revert_at)))


def count_pending_reverts(*, session: Session) -> int:
    query = sa.select(sa.func.count()).where(VerbosityLevel.revert_at.is_not(None))
    return session.scalar(query) or 0


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
