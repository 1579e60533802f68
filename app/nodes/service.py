"""The node inventory: register, change, delete, and move nodes through their lifecycle.

The one door to the node table: other domains read nodes and write what they may (the drift
marks, a commission's host group, lifecycle events) through the functions here, and take "the
master to use" from `cluster_masters` / `first_master`, the one rule for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.ansible import inventory
from app.auth.vocabulary import Role
from app.db import utcnow
from app.errors import Conflict, IllegalTransition, Invalid, NodeExists, NodeNotFound
from app.nodes import lifecycle, listing
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate, NodeRead, NodeUpdate, check_node_name, check_vars_value
from app.nodes.vocabulary import Event, HostGroup, State
from app.timeline import service as timeline
from app.timeline.vocabulary import Result

_NODE = cast(sa.Table, Node.__table__)
_IN_CHUNK = 1000  # names per IN (...) list
# Node vars may hold secrets (become passwords, keys): the timeline names them, never their values.
_SHOWN_FIELDS = ("address", "ssh_port", "ssh_user", "host_group", "labels")
# What a role below admin sees in place of each var's value; the same rule as /globals.
REDACTED = "<redacted>"
SEES_VAR_VALUES = Role.ADMIN


def read_node(*, node: NodeView, role: Role) -> NodeRead:
    """The node as `role` may see it: var keys for everyone, their values for admins only."""
    view = NodeRead.model_validate(node)
    if role.rank >= SEES_VAR_VALUES.rank:
        return view.model_copy(update={"vars": _readable_vars(node.name, view.vars)})
    return view.model_copy(update={"vars": dict.fromkeys(view.vars, REDACTED)})


# NodeRead's fields, in its order (the order of the JSON keys in an answer).
_READ_FIELDS = tuple(NodeRead.model_fields)


def _as_read(node: dict[str, Any], sees_values: bool) -> dict[str, Any]:
    if sees_values:
        node["vars"] = _readable_vars(node["name"], node["vars"])
    else:
        node["vars"] = dict.fromkeys(node["vars"], REDACTED)
    return node


def read_nodes(*, nodes: Iterable[NodeView], role: Role) -> list[dict[str, Any]]:
    """What `read_node` gives for each node, as plain dicts in NodeRead's field order.

    No model per node: the values come from typed columns and from NodeCreate, so they already
    hold NodeRead's types, and at thousands of nodes validating them again costs more than the
    rest of the request. `pydantic_core.to_json` writes them as NodeRead would.
    """
    sees = role.rank >= SEES_VAR_VALUES.rank
    return [_as_read({f: getattr(n, f) for f in _READ_FIELDS}, sees) for n in nodes]


def list_node_reads(
    *,
    session: Session,
    role: Role,
    state: State | None = None,
    host_group: HostGroup | None = None,
    fields: Sequence[str] = _READ_FIELDS,
) -> list[dict[str, Any]]:
    """`read_nodes` of `list_nodes`, read as columns: no ORM object per node (building them
    costs several times the query at thousands of nodes). `fields`: NodeRead's fields wanted
    (a table shows a few: the others are neither read nor converted)."""
    columns = [_NODE.c[field] for field in fields]
    query = _narrow(sa.select(*columns), state=state, host_group=host_group)
    rows = session.execute(query)
    if "vars" not in fields:
        return [dict(zip(fields, row, strict=True)) for row in rows]
    sees = role.rank >= SEES_VAR_VALUES.rank
    return [_as_read(dict(zip(fields, row, strict=True)), sees) for row in rows]


def list_nodes_json(
    *,
    session: Session,
    role: Role,
    state: State | None = None,
    host_group: HostGroup | None = None,
) -> bytes:
    """`list_node_reads` as the JSON array FastAPI would write for it (see app/nodes/listing)."""
    query = _narrow(sa.select(*listing.RAW_COLUMNS), state=state, host_group=host_group)
    return listing.memo.listing(
        session=session,
        query=query,
        sees_values=role.rank >= SEES_VAR_VALUES.rank,
        as_read=_as_read,
    )


def _readable_vars(name: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The vars, with any value stored before today's rules that cannot be sent back (nested
    too deep to serialise, NaN, half a UTF-16 pair) replaced by a note saying how to fix it."""
    out = {}
    for key, value in variables.items():
        try:
            check_vars_value(key, value)
        except ValueError as exc:
            value = f"<unreadable: {exc}; replace it with PATCH /nodes/{name}>"
        out[key] = value
    return out


def _describe(node: Node) -> dict[str, Any]:
    return {
        **{field: getattr(node, field) for field in _SHOWN_FIELDS},
        "vars": sorted(node.vars),
    }


def list_nodes(
    *,
    session: Session,
    state: State | None = None,
    host_group: HostGroup | None = None,
    host_groups: Collection[HostGroup] | None = None,
) -> list[NodeView]:
    """The nodes by name, narrowed to a state, a host group, or any of several host groups."""
    query = _narrow(sa.select(Node), state=state, host_group=host_group, host_groups=host_groups)
    return list(session.scalars(query))


_Q = TypeVar("_Q", bound=sa.Select[Any])


def _narrow(
    query: _Q,
    *,
    state: State | None,
    host_group: HostGroup | None,
    host_groups: Collection[HostGroup] | None = None,
) -> _Q:
    query = query.order_by(Node.name)
    if state is not None:
        query = query.where(Node.state == state)
    if host_group is not None:
        query = query.where(Node.host_group == host_group)
    if host_groups is not None:
        query = query.where(Node.host_group.in_(host_groups))
    return query


def get_node(*, session: Session, name: str) -> Node:
    try:
        check_node_name(name)
    except ValueError:
        # No node can have this name; asking the database anyway would be a driver error on
        # PostgreSQL for a NUL byte, and a 500.
        raise NodeNotFound(name[:253]) from None
    node = session.scalar(sa.select(Node).where(Node.name == name))
    if node is None:
        raise NodeNotFound(name)
    return node


# --- what other domains read and write -----------------------------------------------------------


class NodeView(Protocol):
    """A node as the other domains hold it: the row this module returned, read-only to mypy.

    The row itself, not a copy: verbosity resolves up to a thousand nodes per change, and copying
    each into a record would cost more than reading it. Read-only, because every write goes
    through a function here (the state machine, `updated_at`, `commissioned_at` and the drift
    marks stay this module's business); mypy refuses an assignment to any of these.
    """

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def ssh_port(self) -> int: ...
    @property
    def ssh_user(self) -> str: ...
    @property
    def host_group(self) -> HostGroup: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def vars(self) -> dict[str, Any]: ...
    @property
    def state(self) -> State: ...
    @property
    def commissioned_at(self) -> dt.datetime | None: ...
    @property
    def in_cluster(self) -> bool | None: ...
    @property
    def last_seen_at(self) -> dt.datetime | None: ...
    @property
    def missing_since(self) -> dt.datetime | None: ...


# The states of a node that is part of the cluster: its control plane, if a master, serves.
IN_CLUSTER = frozenset({State.COMMISSIONED, State.UPDATING, State.MAINTENANCE})
# The states in which the drift watch expects a node in the cluster's Node list, so that its
# absence is news (MISSING in the tables, the console's mark, clusterm_nodes_missing). A node in
# a job is the job's business: the watch does not run during jobs, and what it last saw of an
# updating node predates the job.
EXPECTED_IN_CLUSTER = frozenset({State.COMMISSIONED, State.MAINTENANCE})


def _row(node: NodeView) -> Node:
    if not isinstance(node, Node):
        raise TypeError(f"expected a node row from app.nodes.service, got {type(node).__name__}")
    return node


def find_nodes(*, session: Session, names: Iterable[str]) -> dict[str, NodeView]:
    """The nodes of these names that exist, by name (a missing name is simply absent)."""
    wanted = set(names)
    if not wanted:
        return {}
    return {n.name: n for n in session.scalars(sa.select(Node).where(Node.name.in_(wanted)))}


def cluster_masters(*, session: Session, exclude: Collection[str] = ()) -> list[NodeView]:
    """The masters in the cluster (commissioned, updating, maintenance), oldest commission first.

    The one rule for "the master to use": the first of them is the master others join and where
    kubectl runs (the playbooks' `clusterm_first_master`, the drift watch's Node list, the
    apiserver that relays kubelet calls). Oldest commission, because that master has held the
    control plane longest; a node commissioned before clusterm recorded the time comes last, by
    id. `exclude`: the nodes of a job, which the inventory lists on their own.
    """
    query = (
        sa.select(Node)
        .where(Node.host_group == HostGroup.MASTER, Node.state.in_(IN_CLUSTER))
        .order_by(Node.commissioned_at.is_(None), Node.commissioned_at, Node.id)
    )
    return [n for n in session.scalars(query) if n.name not in exclude]


def first_master(*, session: Session) -> NodeView | None:
    """The master others join and where kubectl runs; None when no master is in the cluster."""
    masters = cluster_masters(session=session)
    return masters[0] if masters else None


def mark_seen(*, node: NodeView, now: dt.datetime) -> None:
    """The node is in the cluster's Node list (as a master reported it at `now`)."""
    row = _row(node)
    row.in_cluster, row.last_seen_at, row.missing_since = True, now, None


def mark_missing(*, node: NodeView, since: dt.datetime | None = None) -> None:
    """The node is not in the cluster's Node list; `since`: it has just gone (None: keep when)."""
    row = _row(node)
    row.in_cluster = False
    if since is not None:
        row.missing_since = since


def count_by_state(*, session: Session) -> dict[State, int]:
    """How many nodes are in each state, every state named (zeros too)."""
    query = sa.select(Node.state, sa.func.count()).group_by(Node.state)
    counts = dict.fromkeys(State, 0)
    for state, count in session.execute(query):
        counts[state] = count
    return counts


def count_missing(*, session: Session, states: Collection[State]) -> int:
    """Nodes in `states` the last drift check did not find in the cluster's Node list."""
    query = sa.select(sa.func.count()).where(Node.in_cluster.is_(False), Node.state.in_(states))
    return session.scalar(query) or 0


def set_host_group(*, node: NodeView, host_group: HostGroup) -> None:
    """Give the node the host group its commission asked for (a job, once it holds the node).

    Only a commission may do this: PATCH refuses it for a node in the cluster or in a job.
    """
    row = _row(node)
    row.host_group = host_group


def register_nodes(*, session: Session, nodes: Sequence[NodeCreate], actor: str) -> list[Node]:
    """Register all the nodes or none: a duplicate or an existing name refuses the whole batch."""
    seen: dict[str, int] = {}
    for index, node in enumerate(nodes):
        if node.name in seen:
            raise Invalid(
                f"nodes[{index}].name: {node.name!r} is given twice in this request "
                f"(also at nodes[{seen[node.name]}]); each node must appear once",
                field=f"nodes[{index}].name",
            )
        seen[node.name] = index
    if not nodes:
        raise Invalid("the request holds no node; send a node object or a non-empty array")
    names = list(seen)
    for chunk in _chunks(names):
        existing = session.scalars(sa.select(Node.name).where(Node.name.in_(chunk))).first()
        if existing is not None:
            raise NodeExists(existing)
    now = utcnow()
    values = [
        {**node.model_dump(), "state": State.REGISTERED, "created_at": now, "updated_at": now}
        for node in nodes
    ]
    # The driver's executemany, then one read of the rows: the unit of work would insert them one
    # statement each (it needs each new key), and SQLite cannot hand back a multi-row INSERT's
    # keys in order, which made that some ten times the cost of the insert at thousands of nodes.
    try:
        session.execute(sa.insert(_NODE), values)
    except IntegrityError:
        # A concurrent request registered one of these names between our check and our insert.
        raise Conflict(
            "one of these nodes was registered by another request meanwhile; retry"
        ) from None
    by_name: dict[str, Node] = {}
    for chunk in _chunks(names):
        by_name.update(
            (n.name, n) for n in session.scalars(sa.select(Node).where(Node.name.in_(chunk)))
        )
    rows = [by_name[name] for name in names]
    for row, given in zip(rows, values, strict=True):
        # The maps as given, in their order, as this request has always echoed them (PostgreSQL's
        # JSONB hands them back with their keys reordered). Committed values: nothing to write.
        set_committed_value(row, "labels", given["labels"])
        set_committed_value(row, "vars", given["vars"])
        timeline.record_event(
            session=session,
            action="register",
            reason="NodeRegistered",
            result=Result.SUCCEEDED,
            node=row,
            actor=actor,
            to_state=row.state,
            details=_describe(row),
        )
    return rows


def _chunks(names: list[str]) -> Iterator[list[str]]:
    # Bound parameters per statement are capped (SQLite: 32,766); a body at the largest allowed
    # size can name more nodes than that.
    for start in range(0, len(names), _IN_CHUNK):
        yield names[start : start + _IN_CHUNK]


def update_node(*, session: Session, name: str, change: NodeUpdate, actor: str) -> Node:
    node = get_node(session=session, name=name)
    fields = change.model_dump(exclude_unset=True)
    for field, value in fields.items():
        if value is None:
            raise Invalid(f"{field}: cannot be null; leave it out to keep its value", field=field)
    regrouped = "host_group" in fields and fields["host_group"] != node.host_group
    if regrouped and node.state in lifecycle.PROTECTED_STATES:
        raise Conflict(
            f"node {name!r} is {node.state}: its host group cannot change while it is in the "
            "cluster or in a job; decommission it first",
            node=name,
            state=node.state,
        )
    changed: dict[str, Any] = {}
    for field, value in fields.items():
        before = getattr(node, field)
        if before != value:
            hidden = field == "vars"
            changed[field] = (
                {"keys": sorted(set(before) | set(value))}
                if hidden
                else {"from": before, "to": value}
            )
        setattr(node, field, value)
    if changed:
        node.updated_at = utcnow()
        timeline.record_event(
            session=session,
            action="change",
            reason="NodeChanged",
            result=Result.SUCCEEDED,
            node=node,
            actor=actor,
            note="changed " + ", ".join(sorted(changed)),
            details={"changed": changed},
        )
    return node


def delete_node(*, session: Session, name: str, actor: str) -> Node:
    node = get_node(session=session, name=name)
    if node.state in lifecycle.PROTECTED_STATES:
        raise Conflict(
            f"node {name!r} is {node.state}: a node in the cluster or in a running job cannot be "
            "deleted; decommission it first (or wait for its job to end)",
            node=name,
            state=node.state,
        )
    session.delete(node)
    timeline.record_event(
        session=session,
        action="delete",
        reason="NodeDeleted",
        result=Result.SUCCEEDED,
        node=node,
        actor=actor,
        from_state=node.state,
        details=_describe(node),
    )
    return node


def apply_event(*, session: Session, node: NodeView, event: Event) -> tuple[State, State]:
    """Move `node` along the state machine; return (from_state, to_state).

    The only way a node's state changes: every job (a maintenance too) comes through here.
    It records nothing itself: the caller records the transition on the timeline with the
    returned states, together with why it happened (a job's outcome, an operator's request).
    """
    try:
        to_state = lifecycle.next_state(node.state, event)
    except lifecycle.TransitionRefused as exc:
        raise IllegalTransition(
            node=node.name, state=node.state, event=event, allowed=exc.allowed
        ) from None
    row = _row(node)
    from_state = row.state
    row.state = to_state
    row.updated_at = utcnow()
    # When it entered the cluster: set as it enters, kept through updates and maintenance,
    # cleared as it leaves (a failed update too: it is then no master to join).
    if to_state not in IN_CLUSTER:
        row.commissioned_at = None
    elif from_state not in IN_CLUSTER:
        row.commissioned_at = row.updated_at
    return from_state, to_state


def check_event(*, node: NodeView, event: Event) -> State:
    """The state `event` would move `node` to, changing nothing: IllegalTransition (409) when
    the table has no such move (a job whose node moves only at its end checks it up front)."""
    try:
        return lifecycle.next_state(node.state, event)
    except lifecycle.TransitionRefused as exc:
        raise IllegalTransition(
            node=node.name, state=node.state, event=event, allowed=exc.allowed
        ) from None


def untouched_event(*, start: Event, before: State) -> Event | None:
    """The event that takes a node a rolling job never reached (it started with `start`) back
    to `before`, its state before the job; None when the lifecycle has none."""
    return lifecycle.UNTOUCHED.get((start, before))


def ansible_host(node: NodeView) -> inventory.Host:
    """The node as the Ansible layer takes it (app.ansible knows no domain's models)."""
    return inventory.Host(
        name=node.name,
        address=node.address,
        ssh_port=node.ssh_port,
        ssh_user=node.ssh_user,
        host_group=str(node.host_group),
        vars=dict(node.vars),
        labels=dict(node.labels),
    )
