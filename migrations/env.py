"""Alembic environment: run by `clusterm db upgrade`, by the daemon at start-up, and by the tests."""

from alembic import context

import app.models  # noqa: F401  (registers every table on the metadata)
from app.db import Base, create_db_engine

config = context.config
url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("no database URL given to the migrations")


def run() -> None:
    engine = create_db_engine(url)
    try:
        with engine.execution_options(sqlite_begin="immediate").connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run()
