"""GET /metrics: Prometheus' text format, behind a viewer token like every other read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from app.auth.deps import ViewerDep
from app.deps import RuntimeDep
from app.metrics.collector import choose_format, metrics_registry

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: this replica's requests and log writer, and the cluster as "
    "the database holds it (docs/metrics.md)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(
    runtime: RuntimeDep,
    _: ViewerDep,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """A `def` route: the cluster's values are read from the database, in a worker thread. The
    OpenMetrics format when Accept asks for it, as Prometheus does."""
    encode, content_type = choose_format(accept)
    body = encode(metrics_registry(lambda: runtime.db, runtime.ended_jobs))
    return Response(body, media_type=content_type)
