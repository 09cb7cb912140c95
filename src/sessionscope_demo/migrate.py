"""Apply the service's Alembic migrations, shipped inside the package."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from sessionscope import Database

SCRIPT_LOCATION = "sessionscope_demo:migrations"
VERSION_TABLE = "demo_alembic_version"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Migrate the schema up to ``revision`` (the newest by default), in one transaction where
    the database allows transactional DDL."""
    _run(db, lambda config: command.upgrade(config, revision))


def downgrade(db: Database, revision: str) -> None:
    """Migrate the schema down to ``revision`` (``"base"``: drop every table of the service)."""
    _run(db, lambda config: command.downgrade(config, revision))


def current_revision(db: Database) -> str | None:
    with db.sync_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def _run(db: Database, step: Callable[[Config], None]) -> None:
    config = alembic_config()
    with db.sync_engine.begin() as connection:
        config.attributes["connection"] = connection
        step(config)
