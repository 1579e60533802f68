"""The support bundle: one .tar.gz of what a support engineer asks for first, sent as it is made.

It sits above the domains, as the runtime does: it reads every domain (through their services)
and writes nothing but its own audit event. Parts are gathered one at a time, each in its own
short read transaction, into a spool, then sent as a tar member (app.support.tarstream); the
archive is never whole in memory.

The size rule: the members' bytes before compression (headers included) stay within
`support_bundle_max_bytes`, so the .tar.gz is smaller still. The small parts come first (versions,
settings, verbosity, drift, replicas, nodes, the daemons' recent logs), then the timeline (newest
events first, at most half of what is left), then the jobs, newest first, with everything that is
left. A log that does not fit keeps its newest lines; whatever is cut or left out is listed in
README.txt, which is written last from a reserve of its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database, utcnow
from app.errors import ClustermError
from app.jobs import hosts
from app.jobs import service as jobs
from app.jobs.logstore import LogCache, snapshot
from app.jobs.views import job_view, log_text
from app.logs import LogRing
from app.support import parts
from app.support.readme import Report, readme
from app.support.tarstream import BLOCK, Spool, TarGzStream, member_cost
from app.timeline import service as timeline
from app.timeline.filters import TimelineFilter
from app.timeline.models import TimelineEvent
from app.verbosity.service import Verbosity

log = logging.getLogger("clusterm")

README_RESERVE = 64 * 1024
TIMELINE_PAGE = 1000
MIN_LOG_TAIL = 4 * 1024  # less than this of a log is not worth sending: left out instead


@dataclass(frozen=True)
class Sources:
    """What a bundle reads: the runtime's services (named here: the runtime is not imported)."""

    db: Database
    settings: Settings
    verbosity: Verbosity
    ring: LogRing
    replica_id: str


@dataclass(frozen=True)
class Ask:
    since: str  # as given: 7d, 2026-11-21T10:00:00Z
    actor: str
    authorization: str | None  # the caller's header, sent on to the other replicas only


def check_since(since: str) -> TimelineFilter:
    """The window; a 422 naming `since` when it is not a time or a duration."""
    return TimelineFilter.parse(since=since)


def file_name(now: dt.datetime) -> str:
    return f"clusterm-support-{now.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _one(name: str, build: Callable[[], Spool], what: str) -> Callable[[], Iterator[_Member]]:
    def step() -> Iterator[_Member]:
        yield _Member(name, build(), what)

    return step


@dataclass
class _Member:
    name: str
    spool: Spool
    what: str
    blocks_reversed: bool = False


class Bundle:
    def __init__(self, sources: Sources, ask: Ask, *, now: dt.datetime | None = None) -> None:
        self.sources, self.ask = sources, ask
        self.now = now or utcnow()
        self.window = check_since(ask.since)
        self.report = Report()
        budget = sources.settings.support_bundle_max_bytes
        # README.txt is written last, from a reserve of its own: it always fits.
        self.reserve = min(README_RESERVE, budget // 8)
        self.left = budget - self.reserve - 2 * BLOCK  # the archive's end marker
        self.tar = TarGzStream(
            prefix=file_name(self.now).removesuffix(".tar.gz"), mtime=self.now.timestamp()
        )

    # --- sending ---------------------------------------------------------------------------------

    def stream(self) -> Iterator[bytes]:
        """The .tar.gz, a piece at a time; for a StreamingResponse (run in a worker thread)."""
        steps: list[tuple[str, Callable[[], Iterator[_Member]]]] = [
            *self._small_parts(),
            ("daemon logs", self._logs),
            ("timeline", self._timeline),
            ("jobs", self._jobs),
        ]
        for what, step in steps:
            members = step()
            while True:
                try:
                    member = next(members)
                except StopIteration:
                    break
                except Exception as exc:
                    # The bundle is half sent: say what is missing rather than break it off.
                    log.exception("support bundle: could not gather the %s", what)
                    first = (str(exc).splitlines() or [""])[0][:300]
                    self.report.problems.append(f"{what}: {type(exc).__name__}: {first}")
                    break
                yield from self._send(member)
        text = readme(
            self.report,
            made_at=self.now,
            replica_id=self.sources.replica_id,
            actor=self.ask.actor,
            since=self.ask.since,
            budget=self.sources.settings.support_bundle_max_bytes,
        ).encode("utf-8")
        spool = Spool()
        spool.write(text[: self.reserve - 2 * BLOCK])
        yield from self.tar.spooled("README.txt", spool)
        spool.close()
        yield from self.tar.close()

    def _send(self, member: _Member) -> Iterator[bytes]:
        try:
            if not self._take(member.spool.size):
                size = member.spool.size
                self.report.left_out.append(f"{member.name} ({size} bytes): over the size budget")
                return
            self.report.contents.append((member.name, member.what))
            yield from self.tar.spooled(
                member.name, member.spool, blocks_reversed=member.blocks_reversed
            )
        finally:
            member.spool.close()

    def _take(self, size: int) -> bool:
        cost = member_cost(size)
        if cost > self.left:
            return False
        self.left -= cost
        return True

    def _fit_tail(self, spool: Spool, name: str) -> Spool | None:
        """`spool`, or its newest lines when it is over what is left; None when too little is."""
        room = self.left - 2 * BLOCK
        if member_cost(spool.size) <= self.left:
            return spool
        if room < MIN_LOG_TAIL:
            self.report.left_out.append(f"{name} ({spool.size} bytes): over the size budget")
            spool.close()
            return None
        whole = spool.size
        cut = spool.tail(room)
        self.report.left_out.append(
            f"{name}: its oldest {whole - cut.size} of {whole} bytes (the newest lines are kept)"
        )
        return cut

    # --- the parts -------------------------------------------------------------------------------

    def _small_parts(self) -> list[tuple[str, Callable[[], Iterator[_Member]]]]:
        """One step each: a part that cannot be read leaves the others in."""
        src = self.sources
        parts_ = [
            (
                "versions.json",
                lambda: parts.versions_part(src.db, src.replica_id),
                "clusterm, Python, ansible-core, ansible-runner and the database: versions",
            ),
            (
                "settings.json",
                lambda: parts.settings_part(src.settings),
                "this replica's settings; credentials and files holding one are <redacted>",
            ),
            (
                "verbosity.json",
                lambda: parts.verbosity_part(src.db, src.verbosity, src.replica_id),
                "clusterm's own level on this replica, every component level set, pending reverts",
            ),
            (
                "drift.json",
                lambda: parts.drift_part(src.db, src.settings),
                f"the newest {parts.DRIFT_CHECKS} drift checks, newest first",
            ),
            (
                "nodes.json",
                lambda: parts.nodes_part(src.db),
                "the inventory as a viewer sees it: var values <redacted>",
            ),
        ]
        return [(name, _one(name, build, what)) for name, build, what in parts_]

    def _logs(self) -> Iterator[_Member]:
        src = self.sources
        views = parts.replica_list(src.db, src.settings, src.replica_id)
        yield _Member("replicas.json", parts.replicas_part(views), "the replicas known")
        mine = f"logs/{_safe(src.replica_id)}.log"
        spool = self._fit_tail(parts.own_log(src.ring), mine)
        if spool is not None:
            yield _Member(mine, spool, f"the recent log of replica {src.replica_id} (this one)")
        verify = parts.remote_verify(src.settings)
        for view in views:
            if view.id == src.replica_id or not view.alive:
                continue
            name = f"logs/{_safe(view.id)}.log"
            try:
                fetched = parts.remote_log(
                    view, authorization=self.ask.authorization, verify=verify
                )
            except httpx.HTTPError as exc:
                reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                self.report.problems.append(
                    f"replica {view.id} ({view.advertise_url}) did not answer GET /debug/log: "
                    f"{reason}"
                )
                continue
            spool = self._fit_tail(fetched, name)
            if spool is not None:
                yield _Member(name, spool, f"the recent log of replica {view.id}")

    def _timeline(self) -> Iterator[_Member]:
        db = self.sources.db
        # Both files count: at most half of what is left, the rest is for the jobs.
        budget = self.left // 2 - 4 * BLOCK
        used, before, cut_at = 0, None, None
        as_json, as_text = Spool(), Spool()
        try:
            while cut_at is None:
                with db.read() as session:
                    page = timeline.list_timeline(
                        session=session, filters=self.window, limit=TIMELINE_PAGE, before_id=before
                    )
                lines_json, lines_text = [], []
                for event in page.items:  # newest first
                    one_json = event.model_dump_json() + "\n"
                    one_text = event.line() + "\n"
                    cost = len(one_json.encode()) + len(one_text.encode())
                    if used + cost > budget:
                        cut_at = event.id
                        break
                    used += cost
                    lines_json.append(one_json)
                    lines_text.append(one_text)
                # Each page oldest first; the pages are sent in reverse: oldest first overall.
                as_json.write_text("".join(reversed(lines_json)))
                as_text.write_text("".join(reversed(lines_text)))
                if page.next_before_id is None:
                    break
                before = page.next_before_id
        except BaseException:
            as_json.close()
            as_text.close()
            raise
        if cut_at is not None:
            self._left_out_events(cut_at)
        since = self.ask.since
        yield _Member(
            "timeline.jsonl",
            as_json,
            f"the timeline since {since}, one JSON event a line, oldest first",
            blocks_reversed=True,
        )
        yield _Member(
            "timeline.txt",
            as_text,
            "the same events as text (as GET /info/timeline?format=text), oldest first",
            blocks_reversed=True,
        )

    def _left_out_events(self, cut_at: int) -> None:
        ev = TimelineEvent
        with self.sources.db.read() as session:
            count, oldest = session.execute(
                sa.select(sa.func.count(), sa.func.min(ev.occurred_at)).where(
                    ev.id <= cut_at, *self.window.where()
                )
            ).one()
        self.report.left_out.append(
            f"timeline: its {count} oldest events in the window (id {cut_at} and older, from "
            f"{oldest}): over the size budget"
        )

    def _jobs(self) -> Iterator[_Member]:
        db, settings = self.sources.db, self.sources.settings
        with db.read() as session:
            ids = [row.id for row in jobs.list_jobs(session=session, limit=settings.job_dirs_kept)]
        # A cache of its own: reading twenty logs must not push out the ones clients follow.
        logs = LogCache(cap_bytes=settings.job_log_cap_bytes, size=1)
        for index, job_id in enumerate(ids):  # newest first
            with db.read() as session:
                snapshot(session)
                row = jobs.get_job(session=session, job_id=job_id)
                stored = logs.get(session=session, row=row)
                results = job_hosts(session, job_id, settings.job_dirs_kept)
                about = {**job_view(stored.row), "host_results": results}
            spool = parts.as_json(about)
            if member_cost(spool.size) > self.left:
                spool.close()
                rest = ", ".join(str(i) for i in ids[index:])
                self.report.left_out.append(f"jobs {rest}: over the size budget")
                return
            yield _Member(f"jobs/{job_id}/job.json", spool, f"job {job_id}: its row and hosts")
            text = Spool()
            text.write_text(log_text(stored.log.read(), color=False))
            fitted = self._fit_tail(text, f"jobs/{job_id}/log.txt")
            if fitted is not None:
                yield _Member(f"jobs/{job_id}/log.txt", fitted, f"job {job_id}: its log")


def job_hosts(session: Session, job_id: int, kept: int) -> object:
    """Each host's counts and failed tasks, as GET /jobs/{id}/hosts shows them; for a job
    without them (one that never ran), why not."""
    try:
        return hosts.list_hosts(session=session, job_id=job_id, kept=kept)["hosts"]
    except ClustermError as exc:
        return {"not_available": exc.message}
