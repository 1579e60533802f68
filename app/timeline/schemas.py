"""What the timeline API returns, as JSON and as one line of text per event."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.timeline.vocabulary import Result, Severity


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="server-assigned, increasing: the only order")
    occurred_at: dt.datetime
    node: str | None = Field(description="the node's name, kept after the node is deleted")
    action: str
    reason: str
    result: Result
    severity: Severity
    from_state: str | None
    to_state: str | None
    note: str | None
    details: dict[str, Any] | None
    job_id: int | None
    attempt: int | None
    duration_ms: int | None
    actor: str | None
    audit: bool = Field(
        description="part of the audit trail (tokens, refusals, jobs accepted, cancels, globals, "
        "verbosity), which retention caps on its own"
    )

    @classmethod
    def of(cls, row: Any) -> EventRead:
        """From a stored row (a `timeline_event` Row or a TimelineEvent). The database's values
        are already checked, so no validation: it would cost more than reading the row."""
        return cls.model_construct(
            id=row.id,
            occurred_at=row.occurred_at,
            node=row.node_name,
            action=row.action,
            reason=row.reason,
            result=row.result,
            severity=row.severity,
            from_state=row.from_state,
            to_state=row.to_state,
            note=row.note,
            details=row.details,
            job_id=row.job_id,
            attempt=row.attempt,
            duration_ms=row.duration_ms,
            actor=row.actor,
            audit=row.audit,
        )

    def line(self) -> str:
        """`2026-11-21T10:11:12.345Z node2 commission failed reason=PlaybookFailed job=17 …`"""
        stamp = self.occurred_at.astimezone(dt.UTC).isoformat(timespec="milliseconds")
        parts = [stamp.replace("+00:00", "Z"), self.node or "-", self.action, self.result]
        parts.append(f"reason={self.reason}")
        if self.severity != Severity.INFO:
            parts.append(f"severity={self.severity}")
        if self.from_state and self.to_state:
            parts.append(f"state={self.from_state}->{self.to_state}")
        elif self.from_state or self.to_state:
            parts.append(f"from={self.from_state}" if self.from_state else f"to={self.to_state}")
        for key, value in (
            ("job", self.job_id),
            ("attempt", self.attempt),
            ("duration_ms", self.duration_ms),
            ("actor", self.actor),
        ):
            if value is not None:
                parts.append(f"{key}={value}")
        parts.append(f"id={self.id}")
        if self.note:
            # One event, one line: newlines in a note would break grep and paste.
            parts.append("note=" + " ".join(self.note.split()))
        return " ".join(parts)


class TimelinePage(BaseModel):
    items: list[EventRead] = Field(description="newest first")
    next_before_id: int | None = Field(
        description="pass as before_id for the next, older page; null when nothing older matches"
    )
    next_after_id: int | None = Field(
        description="pass as after_id to poll for newer events than this page holds"
    )
    oldest_id: int | None = Field(description="the oldest event kept: where history starts")
    latest_id: int | None = Field(description="the newest event, whatever the filters")
