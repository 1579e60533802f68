"""The node inventory: register, change, delete, and move nodes through their lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.service import Role
from app.db import utcnow
from app.errors import Conflict, IllegalTransition, Invalid, NodeExists, NodeNotFound
from app.nodes import lifecycle
from app.nodes.lifecycle import Event, State
from app.nodes.models import Node
from app.nodes.schemas import NodeCreate, NodeRead, NodeUpdate, check_node_name, check_vars_value
from app.timeline import service as timeline

# Node vars may hold secrets (become passwords, keys): the timeline names them, never their values.
_SHOWN_FIELDS = ("address", "ssh_port", "ssh_user", "host_group", "labels")
# What a role below admin sees in place of each var's value; the same rule as /globals.
REDACTED = "<redacted>"
SEES_VAR_VALUES = Role.ADMIN


def read_node(*, node: Node, role: Role) -> NodeRead:
    """The node as `role` may see it: var keys for everyone, their values for admins only."""
    view = NodeRead.model_validate(node)
    if role.rank >= SEES_VAR_VALUES.rank:
        return view.model_copy(update={"vars": _readable_vars(node.name, view.vars)})
    return view.model_copy(update={"vars": dict.fromkeys(view.vars, REDACTED)})


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
    *, session: Session, state: str | None = None, host_group: str | None = None
) -> list[Node]:
    query = sa.select(Node).order_by(Node.name)
    if state is not None:
        query = query.where(Node.state == state)
    if host_group is not None:
        query = query.where(Node.host_group == host_group)
    return list(session.scalars(query))


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
    existing = session.scalars(sa.select(Node.name).where(Node.name.in_(seen))).first()
    if existing is not None:
        raise NodeExists(existing)
    now = utcnow()
    rows = [
        Node(**node.model_dump(), state=State.REGISTERED.value, created_at=now, updated_at=now)
        for node in nodes
    ]
    session.add_all(rows)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent request registered one of these names between our check and our insert.
        raise Conflict(
            "one of these nodes was registered by another request meanwhile; retry"
        ) from None
    for row in rows:
        timeline.record_event(
            session=session,
            action="register",
            reason="NodeRegistered",
            result="succeeded",
            node=row,
            actor=actor,
            to_state=row.state,
            details=_describe(row),
        )
    return rows


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
            result="succeeded",
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
        result="succeeded",
        node=node,
        actor=actor,
        from_state=node.state,
        details=_describe(node),
    )
    return node


def apply_event(*, session: Session, node: Node, event: Event) -> tuple[str, str]:
    """Move `node` along the state machine; return (from_state, to_state).

    The only way a node's state changes: jobs and the maintenance route both come through here.
    It records nothing itself: the caller records the transition on the timeline with the
    returned states, together with why it happened (a job's outcome, an operator's request).
    """
    try:
        to_state = lifecycle.next_state(node.state, event)
    except lifecycle.TransitionRefused as exc:
        raise IllegalTransition(
            node=node.name, state=node.state, event=event.value, allowed=exc.allowed
        ) from None
    from_state = node.state
    node.state = to_state.value
    node.updated_at = utcnow()
    return from_state, to_state.value


def set_maintenance(*, session: Session, name: str, enabled: bool, actor: str) -> Node:
    node = get_node(session=session, name=name)
    event = Event.MAINTENANCE_ON if enabled else Event.MAINTENANCE_OFF
    from_state, to_state = apply_event(session=session, node=node, event=event)
    timeline.record_event(
        session=session,
        action="maintenance",
        reason="MaintenanceOn" if enabled else "MaintenanceOff",
        result="succeeded",
        node=node,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
    )
    return node
