"""Alembic environment of the service: runs on the connection `sessionscope_demo.migrate` hands
over, against the service's own version table."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from sessionscope_demo.models import Base

VERSION_TABLE = "demo_alembic_version"

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "run the service's migrations with `sessionscope-demo migrate` (or "
        "sessionscope_demo.migrate.upgrade), which provides the database connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
