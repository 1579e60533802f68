"""Sending one change to many targets at once, bounded, and one target at a time per target.

Concurrency is bounded by a semaphore (setting `verbosity_concurrency`): a thousand nodes are
reached in about (1000 / bound) round trips instead of a thousand, without opening a thousand
sockets at once. Every target gets an Outcome; one failing never stops the others.

Two operations on the same target (a change and the revert worker, say) must not interleave, or
the component could end at one level while the database records the other: `TargetLocks` makes
them take turns. The locks are per process, as is the revert worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from app.verbosity.forward import CredentialsError, Forwarder, Outcome, Profile
from app.verbosity.store import Step

log = logging.getLogger("clusterm.verbosity")

Key = tuple[str, str]


class TargetLocks:
    def __init__(self) -> None:
        # key -> (lock, number of holders and waiters); an entry goes when nobody needs it.
        self._locks: dict[Key, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, keys: Sequence[Key]) -> AsyncIterator[None]:
        # Sorted, so two operations over overlapping targets cannot wait on each other in a cycle.
        ordered = sorted(set(keys))
        for key in ordered:
            lock, users = self._locks.get(key, (asyncio.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        taken: list[asyncio.Lock] = []
        try:
            for key in ordered:
                lock = self._locks[key][0]
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in taken:
                lock.release()
            for key in ordered:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


async def send_all(*, forwarder: Forwarder, steps: Sequence[Step], limit: int) -> list[Outcome]:
    profiles: dict[str, Profile | CredentialsError] = {}
    for name in {s.target.credentials for s in steps if not s.target.problem}:
        try:
            profiles[name] = await forwarder.profile(name)
        except CredentialsError as exc:
            profiles[name] = exc
    semaphore = asyncio.Semaphore(limit)

    async def one(step: Step) -> Outcome:
        target = step.target
        if target.problem:
            return Outcome(False, target.problem_status, target.problem)
        profile = profiles[target.credentials]
        if isinstance(profile, CredentialsError):
            return Outcome(False, 502, str(profile))
        async with semaphore:
            try:
                return await forwarder.put(target, step.level, profile)
            except Exception:
                # A bug must cost one target, not the whole fan-out's record of the others.
                log.exception("sending to %s on %s failed unexpectedly", *target.key)
                return Outcome(
                    False, 502, "clusterm failed while sending; see its log", uncertain=True
                )

    return list(await asyncio.gather(*(one(step) for step in steps)))
