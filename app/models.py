"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from app.auth.models import Token
from app.jobs.models import Job, JobGlobals
from app.nodes.models import Node
from app.timeline.models import TimelineEvent, TimelineRetention
from app.verbosity.models import VerbosityLevel

__all__ = [
    "Job",
    "JobGlobals",
    "Node",
    "TimelineEvent",
    "TimelineRetention",
    "Token",
    "VerbosityLevel",
]
