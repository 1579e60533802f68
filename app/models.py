"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from app.auth.models import Token
from app.nodes.models import Node

__all__ = ["Node", "Token"]
