"""What the support routes write: the audit event of a bundle handed out."""

from __future__ import annotations

from app.db import Database
from app.timeline import service as timeline
from app.timeline.vocabulary import Result, Severity


def record_download(*, db: Database, actor: str, since: str, replica: str) -> None:
    # A bundle holds the inventory and every replica's log: who took one is on the audit trail.
    with db.write() as session:
        timeline.record_event(
            session=session,
            action="support",
            reason="BundleDownloaded",
            result=Result.SUCCEEDED,
            severity=Severity.AUDIT,
            actor=actor,
            note=f"{actor} downloaded a support bundle (timeline since {since}) from {replica}",
            details={"since": since, "replica": replica},
        )
