"""Alembic migrations: the only owner of clusterm's schema."""
