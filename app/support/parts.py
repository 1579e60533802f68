"""The small parts of a support bundle, each one JSON document: read in one short transaction,
never inside a yield (the bundle is sent from a generator, a step at a time)."""

from __future__ import annotations

import contextlib
import json
import ssl
from typing import Any

import httpx
import sqlalchemy as sa

from app.auth.vocabulary import Role
from app.cluster import replicas
from app.config import Settings
from app.db import Database
from app.drift.models import DriftCheck
from app.logs import LogRing
from app.nodes import service as nodes
from app.support.redact import redacted_settings
from app.support.tarstream import Spool
from app.verbosity import service as verbosity
from app.verbosity.service import Verbosity
from app.versions import versions

DRIFT_CHECKS = 20  # the newest drift checks shown: a day at the default interval is 288
REMOTE_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def as_json(value: Any) -> Spool:
    spool = Spool()
    spool.write_text(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")
    return spool


def versions_part(db: Database, replica_id: str) -> Spool:
    return as_json({"replica": replica_id, **versions(db)})


def settings_part(settings: Settings) -> Spool:
    return as_json(redacted_settings(settings))


def verbosity_part(db: Database, ctx: Verbosity, replica_id: str) -> Spool:
    with db.read() as session:
        levels = verbosity.list_levels(session=session, ctx=ctx, component=None, node=None)
    own = ctx.own.state
    return as_json(
        {
            "clusterm": {
                "replica": replica_id,
                "level": own.level,
                "baseline_level": ctx.own.baseline,
                "set_by": own.set_by,
                "set_at": own.set_at,
                "revert_to": own.revert_to,
                "reverts_at": own.reverts_at,
            },
            "levels": [level.model_dump(mode="json") for level in levels],
            "pending_reverts": [
                level.model_dump(mode="json") for level in levels if level.reverts_at is not None
            ],
        }
    )


def drift_part(db: Database, settings: Settings) -> Spool:
    with db.read() as session:
        rows = session.scalars(
            sa.select(DriftCheck).order_by(DriftCheck.id.desc()).limit(DRIFT_CHECKS)
        )
        checks = [
            {column.key: getattr(row, column.key) for column in sa.inspect(DriftCheck).columns}
            for row in rows
        ]
    return as_json(
        {
            "interval_s": settings.drift_interval_s,
            "remediate": settings.drift_remediate,
            "checks_newest_first": checks,
        }
    )


def nodes_part(db: Database) -> Spool:
    with db.read() as session:
        # As a viewer reads them: var names without their values, which may be credentials.
        shown = [
            nodes.read_node(node=node, role=Role.VIEWER).model_dump(mode="json")
            for node in nodes.list_nodes(session=session)
        ]
    return as_json(shown)


def replica_list(db: Database, settings: Settings, replica_id: str) -> list[replicas.ReplicaView]:
    with db.read() as session:
        return replicas.list_replicas(
            session, ttl_s=settings.lease_ttl_s, leader=None, me=replica_id
        )


def replicas_part(views: list[replicas.ReplicaView]) -> Spool:
    return as_json([vars(view) for view in views])


def own_log(ring: LogRing) -> Spool:
    spool = Spool()
    for line in ring.read().lines:
        spool.write_text(line + "\n")
    return spool


def remote_verify(settings: Settings) -> ssl.SSLContext:
    """How another replica's certificate is checked: the system's CAs, plus this replica's own
    certificate chain (replicas usually share one CA, often one certificate)."""
    context = ssl.create_default_context()
    if settings.tls_cert_file is not None:
        # Unreadable: checked against the system's CAs only; a failure is noted per replica.
        with contextlib.suppress(OSError, ssl.SSLError):
            context.load_verify_locations(cafile=str(settings.tls_cert_file))
    return context


def remote_log(
    view: replicas.ReplicaView, *, authorization: str | None, verify: ssl.SSLContext
) -> Spool:
    """Another replica's GET /debug/log, asked with the caller's own token. The URL is the one
    the replica registered (its advertise_url setting), the path set as a part, never text from
    the request. Raises httpx.HTTPError when it does not answer, or answers with an error."""
    url = httpx.URL(view.advertise_url).copy_with(path="/debug/log", query=None)
    headers = {"Authorization": authorization} if authorization else {}
    spool = Spool()
    try:
        with (
            httpx.Client(timeout=REMOTE_TIMEOUT, verify=verify) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes():
                spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return spool
