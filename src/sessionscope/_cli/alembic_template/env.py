"""Alembic environment written by ``sessionscope db init``.

Migrations run on the app's own sessionscope `Database`: its URL, its driver (sync or
async) and its settings. The ``[sessionscope]`` section of alembic.ini names the app
(``app = module:attribute``; ``sessionscope db ... --app`` overrides it) and the metadata
that ``--autogenerate`` compares the database with (``metadata = module:attribute``).
``sessionscope db upgrade`` and plain ``alembic upgrade head`` both run this file; edit it as
any Alembic env.py.
"""

from __future__ import annotations

import asyncio
import pkgutil

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection, MetaData, make_url

from sessionscope import Database, database_of

config = context.config


def setting(name: str) -> str:
    value = config.get_section_option("sessionscope", name)
    if not value:
        raise CommandError(
            f"set `{name} = module:attribute` in the [sessionscope] section of "
            f"{config.config_file_name}"
        )
    return value


def app_database() -> Database:
    target = pkgutil.resolve_name(setting("app"))
    db = target if isinstance(target, Database) else database_of(target)
    if db is None:
        raise CommandError(f"no sessionscope Database found in {setting('app')!r}")
    return db


def target_metadata() -> MetaData:
    target = pkgutil.resolve_name(setting("metadata"))
    metadata = target if isinstance(target, MetaData) else getattr(target, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise CommandError(f"{setting('metadata')!r} is not SQLAlchemy MetaData")
    return metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        # SQLite cannot alter most of a table: batch mode recreates it instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(db: Database) -> None:
    # Alembic's migrations are sync code: run_sync hands them the async driver's connection.
    try:
        async with db.async_engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await db.shutdown()


def run_sync_migrations(db: Database) -> None:
    try:
        with db.sync_engine.connect() as connection:
            run_migrations(connection)
    finally:
        db.sync_engine.dispose()


def print_migrations(db: Database) -> None:
    """Offline mode (``--sql``): print the SQL instead of running it."""
    url = make_url(db.config.url)
    context.configure(
        url=url,
        target_metadata=target_metadata(),
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


database = app_database()
if context.is_offline_mode():
    print_migrations(database)
elif make_url(database.config.url).get_dialect().is_async:
    asyncio.run(run_async_migrations(database))
else:
    run_sync_migrations(database)
