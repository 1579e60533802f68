from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response, status
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from app.auth.deps import AdminDep, ViewerDep
from app.deps import DbDep, JobsDep
from app.errors import NOT_JSON, NodeNotFound, ValidationFailed
from app.jobs.schemas import JobRead
from app.jobs.vocabulary import Kind
from app.nodes import service, views
from app.nodes.schemas import (
    MaintenanceChange,
    NodeCreate,
    NodeRead,
    NodeUpdate,
    check_node_name,
)
from app.nodes.vocabulary import HostGroup, State
from app.tables import TEXT_MEDIA_TYPE, TEXT_RESPONSE, wants_text

router = APIRouter(tags=["nodes"])

_batch = TypeAdapter(list[NodeCreate])


def _parse_nodes(body: Any) -> list[NodeCreate]:
    # One object or an array of them: parsed here rather than by a Union so that an error names
    # the field ("nodes[2].name") instead of listing how the body failed both shapes.
    if isinstance(body, bytes | str):
        # FastAPI hands over the raw body when the content type is not JSON.
        raise ValidationFailed(NOT_JSON, fields=[])
    if not isinstance(body, dict | list):
        raise ValidationFailed.from_errors(
            [{"loc": ("body",), "msg": "must be a node object or an array of node objects"}]
        )
    try:
        if isinstance(body, dict):
            return [NodeCreate.model_validate(body)]
        return _batch.validate_python(body)
    except ValidationError as exc:
        raise ValidationFailed.from_errors(
            exc.errors(), prefix="" if isinstance(body, dict) else "nodes"
        ) from None


FormatQuery = Annotated[
    Literal["json", "text"] | None,
    Query(description="text: the table `clusterctl nodes get` prints (or Accept: text/plain)"),
]
AcceptHeader = Annotated[str | None, Header()]


def _text(body: str) -> Response:
    return Response(body, media_type=TEXT_MEDIA_TYPE)


def _json(body: bytes, status_code: int = status.HTTP_200_OK) -> Response:
    # The bytes FastAPI would write for list[NodeRead] (tests/nodes/test_bulk.py compares them),
    # without validating thousands of models on the way out; `response_model` still documents it.
    return Response(body, status_code=status_code, media_type="application/json")


@router.get("/info/nodes", response_model=list[NodeRead], responses=TEXT_RESPONSE)
def list_nodes(
    db: DbDep,
    who: ViewerDep,
    state: Annotated[State | None, Query(description="only nodes in this state")] = None,
    group: Annotated[HostGroup | None, Query(description="only nodes in this host group")] = None,
    format: FormatQuery = None,
    accept: AcceptHeader = None,
) -> list[NodeRead] | Response:
    """The inventory; below the admin role every var value reads `<redacted>`."""
    with db.read() as session:
        if not wants_text(format, accept):
            return _json(
                service.list_nodes_json(
                    session=session, role=who.role, state=state, host_group=group
                )
            )
        read = service.list_node_reads(
            session=session, role=who.role, state=state, host_group=group, fields=views.FIELDS
        )
    return _text(views.nodes_text(read))


@router.get("/info/node/{name}", response_model=NodeRead, responses=TEXT_RESPONSE)
def get_node(
    name: str, db: DbDep, who: ViewerDep, format: FormatQuery = None, accept: AcceptHeader = None
) -> NodeRead | Response:
    """One node; below the admin role every var value reads `<redacted>`."""
    with db.read() as session:
        node = service.read_node(node=service.get_node(session=session, name=name), role=who.role)
    return _text(views.node_text(node)) if wants_text(format, accept) else node


@router.post(
    "/nodes",
    status_code=status.HTTP_201_CREATED,
    response_model=NodeRead | list[NodeRead],
    summary="Register one node, or an array of nodes (all or nothing)",
)
def register_nodes(
    body: Annotated[Any, Body(description="a NodeCreate object or an array of them")],
    db: DbDep,
    who: AdminDep,
) -> NodeRead | Response:
    nodes = _parse_nodes(body)
    with db.write() as session:
        rows = service.register_nodes(session=session, nodes=nodes, actor=who.name)
        if isinstance(body, dict):
            return service.read_node(node=rows[0], role=who.role)
        read = service.read_nodes(nodes=rows, role=who.role)
    return _json(to_json(read), status.HTTP_201_CREATED)


@router.patch("/nodes/{name}", response_model=NodeRead)
def update_node(name: str, change: NodeUpdate, db: DbDep, who: AdminDep) -> NodeRead:
    with db.write() as session:
        node = service.update_node(session=session, name=name, change=change, actor=who.name)
    return service.read_node(node=node, role=who.role)


@router.delete("/nodes/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_node(name: str, db: DbDep, who: AdminDep) -> Response:
    with db.write() as session:
        service.delete_node(session=session, name=name, actor=who.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/nodes/{name}/maintenance",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    summary="Cordon (and drain) a commissioned node, or uncordon one in maintenance: a job",
)
def set_maintenance(
    name: str, change: MaintenanceChange, who: AdminDep, jobs: JobsDep, response: Response
) -> JobRead:
    """Runs the maintenance playbook on the node (a job of kind `maintenance`); the node moves
    to `maintenance` (or back to `commissioned`) when the job succeeds, and stays when it fails.
    A node in a state that allows no such move is a 409, before any job exists."""
    try:
        check_node_name(name)
    except ValueError:
        # No node has this name, and the job row would store it (a NUL is a driver error).
        raise NodeNotFound(name[:253]) from None
    job = jobs.submit(
        kind=Kind.MAINTENANCE,
        names=[name],
        host_group=None,
        extra_vars={},
        actor=who.name,
        maintenance={"enabled": change.enabled, "drain": change.drain},
    )
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobRead.model_validate(job)
