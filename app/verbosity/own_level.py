"""clusterm's own level, on the replica asked or on every replica.

The level is process state (app.verbosity.own): each replica has its own. `PUT /debug/flags/v`
changes the replica that answers; with `?replicas=all` that replica also publishes the change
(signal OWN_VERBOSITY, a JSON payload: level, ttl, actor, origin) and every other replica applies
it when it hears it, with its own revert timer. Each replica records its own `VerbositySet` (and
later `VerbosityReverted`) on the timeline with `details.replica`, so the audit trail says which
processes changed. A replica that is down when the signal goes out misses it: it starts at its
configured level anyway, as a restarted Kubernetes component does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session

from app.cluster import replicas
from app.cluster.leadership import Leadership
from app.cluster.signals import OWN_VERBOSITY, Signals
from app.config import MAX_LEVEL, Settings
from app.db import Database
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity
from app.verbosity import store
from app.verbosity.own import OwnVerbosity


class Context(Protocol):
    """What of app.verbosity.service.Verbosity this module uses (named here: that module
    imports this one)."""

    db: Database
    settings: Settings
    own: OwnVerbosity
    leadership: Leadership
    signals: Signals
    loop: asyncio.AbstractEventLoop
    closing: bool

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...


log = logging.getLogger("clusterm.verbosity")
T = TypeVar("T")

OWN = "clusterm"  # the component name clusterm's own level is recorded under
ALL = "all"  # the one value `?replicas=` takes


async def set_own(*, ctx: Context, level: int, ttl_s: int, actor: str, everywhere: bool) -> int:
    """Set this replica's level (and, `everywhere`, every replica's); return how many replicas
    were asked: this one, or every replica alive now."""
    previous, _ = ctx.own.set(level=level, ttl_s=ttl_s, actor=actor)
    log.info("%s set clusterm's own verbosity to V%d (ttl %ss)", actor, level, ttl_s or "none")
    me = ctx.leadership.replica_id
    payload = json.dumps({"level": level, "ttl": ttl_s, "actor": actor, "origin": me})

    def record(session: Session) -> int:
        _event(session, ctx, "VerbositySet", previous, level, actor=actor, ttl_s=ttl_s)
        if not everywhere:
            return 1
        # In the transaction: the others hear it once the event is written.
        ctx.signals.publish(OWN_VERBOSITY, payload, session=session)
        return _alive_replicas(session, ctx)

    return await _write(ctx, record)


def listen(ctx: Context) -> None:
    """Apply the changes other replicas publish (see the module docstring)."""
    loop = ctx.loop

    def heard(payload: str) -> None:
        # In the signal listener's thread: hand over to the event loop, which owns the level.
        if payload and not loop.is_closed():
            loop.call_soon_threadsafe(_apply_heard, ctx, payload)

    ctx.signals.subscribe(OWN_VERBOSITY, heard)


def _apply_heard(ctx: Context, payload: str) -> None:
    try:
        change = json.loads(payload)
        level, ttl_s, actor, origin = (
            change["level"],
            change["ttl"],
            change["actor"],
            change["origin"],
        )
        valid = (
            isinstance(level, int)
            and 0 <= level <= MAX_LEVEL
            and isinstance(ttl_s, int)
            and ttl_s >= 0
            and isinstance(actor, str)
            and isinstance(origin, str)
        )
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        log.warning("ignored an own-verbosity signal clusterm cannot read: %.200r", payload)
        return
    if origin == ctx.leadership.replica_id or ctx.closing:
        return  # our own, already applied; or too late to record anything
    previous, _ = ctx.own.set(level=level, ttl_s=ttl_s, actor=actor)
    log.info(
        "%s set clusterm's own verbosity to V%d on every replica (from %s)", actor, level, origin
    )
    ctx.spawn(
        record_own(ctx, "VerbositySet", previous, level, actor=actor, ttl_s=ttl_s, origin=origin)
    )


async def record_own(
    ctx: Context,
    reason: str,
    old: int,
    new: int,
    *,
    actor: str = OWN,
    ttl_s: int = 0,
    origin: str | None = None,
) -> None:
    def record(session: Session) -> None:
        _event(session, ctx, reason, old, new, actor=actor, ttl_s=ttl_s, origin=origin)

    await _write(ctx, record)


def _event(
    session: Session,
    ctx: Context,
    reason: str,
    old: int,
    new: int,
    *,
    actor: str,
    ttl_s: int,
    origin: str | None = None,
) -> None:
    details: dict[str, object] = {"component": OWN, "replica": ctx.leadership.replica_id}
    if ttl_s:
        details["ttl_seconds"] = ttl_s
    if origin is not None:
        details["asked_on"] = origin
    timeline.record_event(
        session=session,
        action=store.ACTION,
        reason=reason,
        result=Result.SUCCEEDED,
        severity=Severity.AUDIT,
        actor=actor,
        from_state=str(old),
        to_state=str(new),
        details=details,
    )


def _alive_replicas(session: Session, ctx: Context) -> int:
    views = replicas.list_replicas(
        session,
        ttl_s=ctx.settings.lease_ttl_s,
        leader=None,
        me=ctx.leadership.replica_id,
    )
    # This replica counts even before its row is written (it answers, so it is alive).
    alive = {v.id for v in views if v.alive} | {ctx.leadership.replica_id}
    return len(alive)


async def _write(ctx: Context, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with ctx.db.write() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(run)
