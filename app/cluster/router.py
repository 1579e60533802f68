"""The replicas over HTTP: who they are, which leads."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.deps import ViewerDep
from app.cluster import replicas
from app.cluster.schemas import ReplicaRead, ReplicasRead
from app.deps import DbDep, RuntimeDep

router = APIRouter(tags=["cluster"])


@router.get("/cluster/replicas", response_model=ReplicasRead, response_model_by_alias=True)
def list_replicas(runtime: RuntimeDep, db: DbDep, _: ViewerDep) -> ReplicasRead:
    me = runtime.identity.replica_id
    with db.read() as session:
        leader = runtime.leadership.leader(session)
        views = replicas.list_replicas(
            session,
            ttl_s=runtime.settings.lease_ttl_s,
            leader=leader.replica_id if leader else None,
            me=me,
        )
    return ReplicasRead(
        leader=leader.replica_id if leader else None,
        answered_by=me,
        replicas=[ReplicaRead.model_validate(vars(view)) for view in views],
    )
