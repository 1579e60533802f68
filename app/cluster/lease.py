"""The lead on PostgreSQL: a lease row, renewed by the leader, taken over when it runs out.

Why a lease row rather than an advisory lock, and the timings: docs/replicas.md. In short:

- `cluster_lease` (one row) names the holder, the epoch of its lead (one more at each change of
  hands) and when the lead expires, on the database's clock (replicas' clocks may disagree).
- The leader renews it every `ttl / 4`. A leader that has not renewed for `ttl / 2` (a network
  cut, a stalled database, a long pause) kills its running playbook and steps down: the lease
  cannot pass to another replica before `ttl` has run out since its last renewal, so the kill
  comes first, and two replicas never drive the same nodes.
- Every write only the leader may make is fenced (`fence`): in the same transaction it checks that
  the lease is still this replica's, in this epoch, unexpired, and locks the row FOR KEY SHARE.
  A replica taking the lead locks the row FOR UPDATE, so it waits for that transaction to end;
  the leader's own renewal (an UPDATE of a column no key holds) does not wait. A replica that
  lost the lead during a pause therefore cannot settle a job or revert a level afterwards.
- Followers try to take an expired lease every `ttl / 4`, and at once when a leader lets go at
  a graceful stop (the LEAD signal).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import threading
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.cluster import replicas
from app.cluster.leadership import Change, LeaderInfo, LeadLost
from app.cluster.models import Lease
from app.cluster.signals import LEAD, Signals
from app.db import Database

log = logging.getLogger("clusterm.cluster")


def _now() -> sa.ColumnElement[dt.datetime]:
    # The clock at the statement, not at the transaction's start (now()).
    return sa.func.clock_timestamp()


def _plus(seconds: float) -> sa.ColumnElement[dt.datetime]:
    return sa.func.clock_timestamp() + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)


class LeaseLeadership:
    """The lease on PostgreSQL, kept by a thread of its own with its own connection, so that a
    busy event loop or thread pool never delays a renewal."""

    def __init__(
        self,
        *,
        db: Database,
        signals: Signals,
        replica_id: str,
        ttl_s: float,
        cannot_lead: Callable[[Session], str | None],
        on_gain: Callable[[Change], Awaitable[None]],
        kill_now: Callable[[], None],
        on_loss: Callable[[str], Awaitable[None]],
    ) -> None:
        self.replica_id = replica_id
        self.ttl_s = ttl_s
        self.renew_s = ttl_s / 4
        self.step_down_s = ttl_s / 2
        self._db = db
        self._signals = signals
        self._cannot_lead = cannot_lead
        self._on_gain, self._kill_now, self._on_loss = on_gain, kill_now, on_loss
        # A pool of its own: the lease never waits behind the requests' connections.
        self._engine = sa.create_engine(
            db.engine.url,
            pool_size=1,
            max_overflow=1,
            pool_pre_ping=True,
            hide_parameters=True,
            # A cut network must fail a renewal rather than hang it (the watchdog steps down
            # either way): libpq's connect timeout, keepalives and TCP user timeout.
            connect_args={
                "connect_timeout": max(1, int(self.step_down_s / 2)),
                "keepalives": 1,
                "keepalives_idle": 1,
                "keepalives_interval": 1,
                "keepalives_count": 2,
                "tcp_user_timeout": int(self.step_down_s * 500),
            },
        )
        self._leading = False
        self._guard = threading.Lock()  # a lead is lost once, whoever notices first
        self._renewed_at = time.monotonic()  # when the last successful renewal began
        self._epoch = 0
        self._settled = threading.Event()  # no background work runs (none started, or stopped)
        self._settled.set()
        self._wake = threading.Event()
        self._campaigning = True
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.note: str | None = None  # why this replica cannot lead, when it cannot
        self._first_round = threading.Event()
        self._round = threading.Lock()
        self._start_error: Exception | None = None  # why the lead's work failed to start
        self._pending: concurrent.futures.Future[None] | None = None
        signals.subscribe(LEAD, lambda _payload: self._wake.set())

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def epoch(self) -> int:
        return self._epoch if self._leading else 0

    def fence(self, session: Session) -> None:
        if not self._leading:
            raise LeadLost()
        held = session.scalar(
            sa.select(Lease.epoch)
            .where(
                Lease.id == 1,
                Lease.holder == self.replica_id,
                Lease.epoch == self._epoch,
                Lease.expires_at > _now(),
            )
            .with_for_update(read=True, key_share=True)
        )
        if held is None:
            raise LeadLost()

    def leader(self, session: Session) -> LeaderInfo | None:
        row = session.execute(
            sa.select(Lease.holder, Lease.epoch, Lease.expires_at).where(
                Lease.id == 1, Lease.holder.is_not(None), Lease.expires_at > _now()
            )
        ).first()
        return (
            None
            if row is None or row.holder is None
            else LeaderInfo(row.holder, row.epoch, row.expires_at)
        )

    # --- the thread ------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name="lease-watchdog", daemon=True)
        self._thread.start()
        self._watchdog.start()

    async def first_round(self) -> None:
        """Wait until the thread has tried once to take the lead and, if it took it, until the
        leader's work has started: a lone replica is the leader when it says it is ready. A
        leader's work that cannot start then fails the start-up, as it does on SQLite: a
        misconfigured replica says so at once rather than passing the lead round forever."""
        await asyncio.to_thread(self._first_round.wait, self.ttl_s)
        if self._pending is not None:
            await asyncio.wrap_future(self._pending)
        if self._start_error is not None:
            raise self._start_error

    async def quiesce(self) -> None:
        """Take the lead no more (a graceful stop has begun), and wait until no gain is under
        way: the background work stopped after this stays stopped. The lead held is kept (and
        renewed) until `release`, so that work can still finish its writes."""
        self._campaigning = False
        await asyncio.to_thread(self._wait_for_round)
        pending = self._pending
        if pending is not None:
            await asyncio.wrap_future(pending)

    def _wait_for_round(self) -> None:
        with self._round:  # an attempt to take the lead holds it until its gain is scheduled
            pass

    def release(self) -> None:
        """Let the lead go at once (the background work has stopped) and stop the threads."""
        self._stopping.set()
        self._wake.set()
        for thread in (self._thread, self._watchdog):
            if thread is not None:
                thread.join(self.ttl_s * 2)
        with self._guard:
            leading, self._leading = self._leading, False
        if leading:
            self._expire(self._epoch, stopping=True)
        self._engine.dispose()

    def _expire(self, epoch: int, *, stopping: bool = False) -> None:
        """End this replica's lease of `epoch` now and tell the followers to take it. When
        `stopping`, its row says so in the same transaction: the follower that takes the lead
        reads that row to say why the lead passed, and may do so the moment the lease ends."""
        try:
            with self._engine.begin() as conn:
                if stopping:
                    with Session(conn) as session:
                        replicas.mark_stopped(session, replica_id=self.replica_id)
                conn.execute(
                    sa.update(Lease)
                    .where(Lease.id == 1, Lease.holder == self.replica_id, Lease.epoch == epoch)
                    .values(expires_at=_now())
                )
            self._signals.publish(LEAD)
            log.info("let the lead go (epoch %d): another replica takes it now", epoch)
        except Exception as exc:
            log.warning("could not let the lead go (%s); it expires by itself", exc)

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                if self._leading:
                    reason = self._renew()
                    if reason is None:
                        self._renewed_at = started
                    else:
                        # The schema moved past this replica: hand over now, not at expiry.
                        self._lose(reason, hand_over=True)
                else:
                    self._heartbeat()
                    with self._round:
                        if self._campaigning and self._settled.is_set():
                            change = self._try_acquire()
                            if change is not None:
                                self._renewed_at = started
                                self._gain(change)
            except Exception as exc:
                log.warning("the lease could not be read or renewed: %s", exc)
            self._first_round.set()
            self._wake.wait(max(0.0, self.renew_s - (time.monotonic() - started)))
            self._wake.clear()

    def _watch(self) -> None:
        """Step down when the lease has not been renewed for `step_down_s`, whatever the
        renewing thread is doing: a renewal may hang on a cut connection rather than fail."""
        while not self._stopping.wait(self.renew_s / 4):
            if self._leading and time.monotonic() - self._renewed_at > self.step_down_s:
                self._lose(f"could not renew the lead for {self.step_down_s:g} s")

    def _renew(self) -> str | None:
        """None when renewed; else why the lead is no longer this replica's."""
        with self._engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '1s'"))
            conn.execute(sa.text("SET LOCAL statement_timeout = '1s'"))
            with Session(conn) as session:
                reason = self._cannot_lead(session)
            if reason is not None:
                self.note = reason
                return reason
            renewed = conn.execute(
                sa.update(Lease)
                .where(
                    Lease.id == 1,
                    Lease.holder == self.replica_id,
                    Lease.epoch == self._epoch,
                    Lease.expires_at > _now(),
                )
                .values(expires_at=_plus(self.ttl_s))
            ).rowcount
            replicas.heartbeat(conn, replica_id=self.replica_id, role=replicas.LEADER, note=None)
        return None if renewed else "the lease ran out before it was renewed"

    def _heartbeat(self) -> None:
        with self._engine.begin() as conn:
            # Looked at every round, not only when the lease is free: the list must say a
            # replica cannot lead while another one leads too.
            with Session(conn) as session:
                self.note = self._cannot_lead(session)
            replicas.heartbeat(
                conn, replica_id=self.replica_id, role=replicas.FOLLOWER, note=self.note
            )

    def _try_acquire(self) -> Change | None:
        with self._engine.begin() as conn:
            free = conn.execute(
                sa.select(Lease.id).where(
                    Lease.id == 1, sa.or_(Lease.expires_at.is_(None), Lease.expires_at <= _now())
                )
            ).first()
            if free is None:
                return None
            with Session(conn) as session:
                reason = self._cannot_lead(session)
            self.note = reason
            if reason is not None:
                return None
            conn.execute(sa.text("SET LOCAL lock_timeout = '1s'"))
            row = conn.execute(
                sa.select(Lease.holder, Lease.epoch, Lease.expires_at, _now())
                .where(Lease.id == 1)
                .with_for_update()
            ).one()
            holder, epoch, expires_at, now = row
            if expires_at is not None and expires_at > now:
                return None  # another follower was quicker
            conn.execute(
                sa.update(Lease)
                .where(Lease.id == 1)
                .values(
                    holder=self.replica_id,
                    epoch=epoch + 1,
                    expires_at=_plus(self.ttl_s),
                    acquired_at=_now(),
                )
            )
            why = replicas.why_lead_passed(conn, previous=holder, expired_at=expires_at, now=now)
            replicas.heartbeat(conn, replica_id=self.replica_id, role=replicas.LEADER, note=None)
        return Change(epoch=epoch + 1, previous=holder, why=why)

    def _gain(self, change: Change) -> None:
        self._epoch = change.epoch
        self._settled.clear()
        with self._guard:
            self._leading = True
        log.warning("this replica (%s) leads now, epoch %d", self.replica_id, change.epoch)
        self._call(self._on_gain(change))

    def _lose(self, reason: str, *, hand_over: bool = False) -> None:
        # In this order: the fence refuses from now on, then the playbook dies, all before the
        # lease can run out; stopping the rest may take longer.
        with self._guard:
            if not self._leading:
                return  # lost already (the watchdog and the loop may both see it)
            self._leading = False
        epoch = self._epoch
        log.error("this replica (%s) lost the lead: %s", self.replica_id, reason)
        try:
            self._kill_now()
        except Exception:
            log.exception("could not kill the running playbook after losing the lead")

        async def stop() -> None:
            try:
                await self._on_loss(reason)
                if hand_over:
                    await asyncio.to_thread(self._expire, epoch)
            finally:
                # Only now may the lead be taken again: no work of the lost term is left.
                self._settled.set()

        self._call(stop())

    def _call(self, coro: Awaitable[None]) -> None:
        assert self._loop is not None

        async def run() -> None:
            try:
                await coro
            except Exception as exc:
                log.exception("the lead's start or stop failed")
                self._start_error = exc  # read by `first_round` only, at start-up
                if self._leading:  # a leader that cannot run its work must not hold the lead
                    self._lose("the leader's work could not start")

        self._pending = asyncio.run_coroutine_threadsafe(run(), self._loop)
