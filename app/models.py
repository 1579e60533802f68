"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from app.auth.models import Token
from app.cluster.models import KnownHost, Lease, Replica
from app.drift.models import DriftCheck
from app.jobs.models import Job, JobGlobals, JobLog, JobLogChunk
from app.nodes.models import Node
from app.timeline.models import TimelineEvent, TimelineRetention
from app.verbosity.models import VerbosityLevel, VerbosityLock

__all__ = [
    "DriftCheck",
    "Job",
    "JobGlobals",
    "JobLog",
    "JobLogChunk",
    "KnownHost",
    "Lease",
    "Node",
    "Replica",
    "TimelineEvent",
    "TimelineRetention",
    "Token",
    "VerbosityLevel",
    "VerbosityLock",
]
