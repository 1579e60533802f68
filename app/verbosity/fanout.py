"""Sending one change to many targets at once, bounded.

Concurrency is bounded by a semaphore (setting `verbosity_concurrency`): a thousand nodes are
reached in about (1000 / bound) round trips instead of a thousand, without opening a thousand
sockets at once. Every target gets an Outcome; one failing never stops the others. Whoever sends
holds the targets' locks (app.verbosity.locks).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from app import instruments
from app.verbosity.forward import CredentialsError, Forwarder, Outcome, Profile
from app.verbosity.registry import DEFAULTS
from app.verbosity.store import Step

log = logging.getLogger("clusterm.verbosity")

SUCCEEDED, FAILED = "succeeded", "failed"
# Every component and result from the first scrape on, at 0 (ten series: the components are a
# closed set), so that `increase()` sees a component's first failure rather than a new series.
for _component in DEFAULTS:
    for _result in (SUCCEEDED, FAILED):
        instruments.VERBOSITY_CHANGES.labels(_component, _result)


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

    outcomes = list(await asyncio.gather(*(one(step) for step in steps)))
    # Counted per (component, result), then added: one labelled increment per target costs the
    # event loop a lookup each, a thousand for a thousand nodes.
    counts = Counter(
        (step.target.component, SUCCEEDED if outcome.ok else FAILED)
        for step, outcome in zip(steps, outcomes, strict=True)
    )
    for (component, result), count in counts.items():
        instruments.VERBOSITY_CHANGES.labels(component, result).inc(count)
    return outcomes
