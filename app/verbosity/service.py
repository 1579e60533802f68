"""Verbosity operations on components: change, reset, revert what is due, list.

Each operation follows the same steps: resolve the targets (nothing is sent if a name is unknown
or cannot run the component), take the targets' locks (across replicas: app.verbosity.locks), read
what clusterm knew (and, for a change, write it ahead), send concurrently, then record every
outcome and its timeline event in one transaction. Changes and resets are users' requests and run
on any replica; reverts are the leader's work and are fenced (see `_apply`). `Verbosity` holds
what the operations share for the life of the daemon. clusterm's own level: own_level.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.cluster.leadership import Leadership, LeadLost
from app.cluster.signals import REVERTS, Signals
from app.config import Settings
from app.db import Database, utcnow
from app.errors import DatabaseBusy, database_busy
from app.verbosity import own_level, store
from app.verbosity.fanout import send_all
from app.verbosity.forward import Forwarder, Outcome
from app.verbosity.locks import TargetLocks, target_locks
from app.verbosity.own import OwnVerbosity
from app.verbosity.registry import Registry
from app.verbosity.schemas import ChangeReport, LevelRead, Selection, SkippedNode, TargetResult
from app.verbosity.store import Step

log = logging.getLogger("clusterm.verbosity")
T = TypeVar("T")


@dataclass
class Verbosity:
    """What the operations share for the life of the daemon. Made on the event loop
    (`create`), which the signal callbacks hand their work to."""

    db: Database
    settings: Settings
    registry: Registry
    forwarder: Forwarder
    own: OwnVerbosity
    leadership: Leadership
    signals: Signals
    loop: asyncio.AbstractEventLoop
    locks: TargetLocks
    revert_scheduled: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closing: bool = False

    @classmethod
    def create(
        cls, *, db: Database, settings: Settings, leadership: Leadership, signals: Signals
    ) -> Verbosity:
        registry = Registry(settings)
        forwarder = Forwarder(
            registry=registry,
            timeout_s=settings.verbosity_timeout_s,
            max_connections=settings.verbosity_concurrency,
        )
        ctx: Verbosity
        own = OwnVerbosity(
            log_level=settings.log_level,
            on_revert=lambda old, new: ctx.spawn(
                own_level.record_own(ctx, "VerbosityReverted", old, new)
            ),
        )
        ctx = cls(
            db=db,
            settings=settings,
            registry=registry,
            forwarder=forwarder,
            own=own,
            leadership=leadership,
            signals=signals,
            loop=asyncio.get_running_loop(),
            locks=target_locks(db),
        )
        own_level.listen(ctx)
        return ctx

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background; `close` waits for it."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        """Wait for the background recordings, then stop the timers and the clients. After the
        revert worker has stopped (see app.runtime), before the database closes."""
        self.closing = True  # a signal heard from now on is not applied
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.own.close()
        await self.forwarder.aclose()


async def _read(ctx: Verbosity, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with ctx.db.read() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(run)


async def _write(ctx: Verbosity, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with ctx.db.write() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(run)


async def _record_sent(
    ctx: Verbosity, fn: Callable[[Session], None], *, wake_reverts: bool = False
) -> None:
    """Record the outcomes of PUTs already sent. A database too busy to take them must not be
    answered with "nothing was changed": the components did change. What was written before the
    PUTs (the intended levels and their reverts) stands, so the reverts still run.

    `wake_reverts`: the record schedules a revert; the revert worker, on whichever replica leads,
    hears of it when the record commits."""

    def record(session: Session) -> None:
        fn(session)
        if wake_reverts:
            ctx.signals.publish(REVERTS, session=session)

    try:
        await _write(ctx, record)
    except OperationalError as exc:
        if database_busy(exc) is None:
            raise
        ctx.revert_scheduled.set()
        raise DatabaseBusy(
            "the change was sent to the components, but the database was too busy to record "
            "the outcomes; the intended levels and their reverts were recorded before sending "
            "and stand (GET /verbosity). Check the levels before sending the change again",
            retry_after_s=1,
        ) from None
    if wake_reverts:
        ctx.revert_scheduled.set()  # this replica's worker, if it leads, looks at once


def _results(steps: Sequence[Step], outcomes: Sequence[Outcome]) -> list[TargetResult]:
    return [
        TargetResult(
            node=s.target.node,
            component=s.target.component,
            ok=o.ok,
            status=o.status,
            message=o.message,
            previous_level=s.previous,
            level=s.level,
        )
        for s, o in zip(steps, outcomes, strict=True)
    ]


def _report(
    steps: Sequence[Step],
    outcomes: Sequence[Outcome],
    *,
    component: str | None,
    level: int | None,
    ttl_s: int | None,
    reverts_at: dt.datetime | None,
    skipped: Sequence[SkippedNode] = (),
) -> ChangeReport:
    results = _results(steps, outcomes)
    succeeded = sum(r.ok for r in results)
    return ChangeReport(
        component=component,
        level=level,
        ttl_seconds=ttl_s,
        reverts_at=reverts_at if succeeded else None,
        succeeded=succeeded,
        failed=len(results) - succeeded,
        results=results,
        skipped=list(skipped),
    )


async def change(
    *,
    ctx: Verbosity,
    component: str,
    selection: Selection,
    level: int,
    ttl_s: int,
    actor: str,
) -> tuple[ChangeReport, list[Outcome]]:
    """Set `level` on every selected target; the change and its revert are written first (see
    the store's docstring: what a crash in the middle leaves)."""
    resolution = await _read(
        ctx,
        lambda s: store.resolve(
            session=s, registry=ctx.registry, component=component, selection=selection
        ),
    )
    targets = resolution.targets
    async with ctx.locks.hold([t.key for t in targets]):
        now = utcnow()
        steps = await _write(
            ctx,
            lambda s: store.begin_change(
                session=s, targets=targets, level=level, ttl_s=ttl_s, actor=actor, now=now
            ),
        )
        outcomes = await send_all(
            forwarder=ctx.forwarder, steps=steps, limit=ctx.settings.verbosity_concurrency
        )
        await _record_sent(
            ctx,
            lambda s: store.record_change(
                session=s, steps=steps, outcomes=outcomes, actor=actor, now=now, ttl_s=ttl_s
            ),
            wake_reverts=bool(ttl_s) or any(o.uncertain for o in outcomes),
        )
    ok = sum(o.ok for o in outcomes)
    log.info("%s set %s to V%d on %d of %d nodes", actor, component, level, ok, len(outcomes))
    reverts_at = now + dt.timedelta(seconds=ttl_s) if ttl_s else None
    report = _report(
        steps,
        outcomes,
        component=component,
        level=level,
        ttl_s=ttl_s,
        reverts_at=reverts_at,
        skipped=resolution.skipped,
    )
    return report, outcomes


async def reset(
    *, ctx: Verbosity, component: str | None, nodes: Sequence[str] | None, actor: str
) -> ChangeReport:
    """Put levels back now, each to its pending revert's destination or else its baseline."""

    def plan(session: Session) -> list[Step]:
        return store.plan_reset(
            session=session, registry=ctx.registry, component=component, nodes=nodes
        )

    keys = [s.target.key for s in await _read(ctx, plan)]
    # Planned again once the targets are locked: a change that held them may have moved a level.
    steps, outcomes = await _apply(ctx, keys, plan, actor=actor, reason="VerbosityReset")
    log.info("%s reset %d levels", actor, len(steps))
    return _report(steps, outcomes, component=component, level=None, ttl_s=None, reverts_at=None)


async def revert_due(*, ctx: Verbosity, limit: int = 500) -> int:
    """Run the reverts whose time has come; return how many were attempted."""
    now = utcnow()
    keys = await _read(ctx, lambda s: store.due_keys(session=s, now=now, limit=limit))
    if not keys:
        return 0

    def plan(session: Session) -> list[Step]:
        return store.due_reverts(session=session, registry=ctx.registry, now=now, keys=keys)

    await _apply(ctx, keys, plan, actor=store.SYSTEM_ACTOR, reason="VerbosityReverted", fenced=True)
    return len(keys)


async def _apply(
    ctx: Verbosity,
    keys: Sequence[store.Key],
    plan: Callable[[Session], list[Step]],
    *,
    actor: str,
    reason: str,
    fenced: bool = False,
) -> tuple[list[Step], list[Outcome]]:
    """Send and record the planned steps under the keys' locks. `fenced`: the leader's own work
    (a revert), which a replica that does not lead sends not, and records not when the lead went
    while it was sent (LeadLost: the next leader sends it again, to the same end);
    a user's reset runs on any replica."""
    if not keys:
        return [], []
    locked = set(keys)
    async with ctx.locks.hold(keys):
        steps = [s for s in await _read(ctx, plan) if s.target.key in locked]
        if fenced and steps:
            await _write(ctx, ctx.leadership.fence)
            if not ctx.leadership.is_leader:  # lost since: the lease thread knows first
                raise LeadLost()
        outcomes = await send_all(
            forwarder=ctx.forwarder, steps=steps, limit=ctx.settings.verbosity_concurrency
        )
        now = utcnow()

        def record(session: Session) -> None:
            if fenced:
                ctx.leadership.fence(session)  # first thing, in the same transaction
            store.record_reset(
                session=session,
                steps=steps,
                outcomes=outcomes,
                actor=actor,
                now=now,
                reason=reason,
                retry_s=ctx.settings.verbosity_revert_retry_s,
                max_attempts=ctx.settings.verbosity_revert_max_attempts,
            )

        await _record_sent(ctx, record)
    return steps, outcomes


async def next_revert_at(*, ctx: Verbosity) -> dt.datetime | None:
    return await _read(ctx, lambda s: store.next_revert_at(session=s))


def count_pending_reverts(*, session: Session) -> int:
    """The automatic reverts owed (due or not): what clusterm_verbosity_reverts_pending reads."""
    return store.count_pending_reverts(session=session)


def list_levels(
    *, session: Session, ctx: Verbosity, component: str | None, node: str | None
) -> list[LevelRead]:
    return store.list_levels(session=session, registry=ctx.registry, component=component, node=node)
