"""The Alembic migrations shipped in the package, up and down on every database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from sessionscope import Database
from sessionscope_demo.migrate import VERSION_TABLE, current_revision, downgrade, upgrade
from sessionscope_demo.models import Base

SERVICE_TABLES = {"demo_users", "demo_items", "sessionscope_idempotency_keys"}


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The database, handed back in the schema state it was found in (other tests of this
    session may be using the service's tables on the same server)."""
    database = Database(database_url)
    found_at = current_revision(database)
    yield database
    if found_at is None:
        downgrade(database, "base")
        with database.sync_engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
    else:
        upgrade(database, found_at)
    database.sync_engine.dispose()


def service_tables(engine: Engine) -> set[str]:
    return SERVICE_TABLES & set(inspect(engine).get_table_names())


def test_up_down_and_up_again(db: Database) -> None:
    upgrade(db)
    assert current_revision(db) == "0003"
    assert service_tables(db.sync_engine) == SERVICE_TABLES
    downgrade(db, "base")
    assert current_revision(db) is None
    assert service_tables(db.sync_engine) == set()
    upgrade(db)
    assert service_tables(db.sync_engine) == SERVICE_TABLES
    upgrade(db)  # nothing pending: a no-op, not an error
    assert current_revision(db) == "0003"


def test_migrated_schema_matches_the_models(db: Database, database_url: str) -> None:
    upgrade(db)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, kind, _parent: (
                        kind != "table" or name in SERVICE_TABLES
                    ),
                },
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_downgrade_gives_a_user_without_a_name_an_empty_one(db: Database) -> None:
    upgrade(db)
    with db.sync_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO demo_users (email, name, password_hash, created_at) "
                "VALUES ('nameless@example.com', NULL, 'x', '2026-01-01 00:00:00')"
            )
        )
    try:
        downgrade(db, "0001")
        assert current_revision(db) == "0001"
        with db.sync_engine.connect() as connection:
            names = connection.execute(
                text("SELECT name FROM demo_users WHERE email = 'nameless@example.com'")
            ).scalars()
            assert list(names) == [""]
    finally:
        with db.sync_engine.begin() as connection:
            connection.execute(text("DELETE FROM demo_users WHERE email = 'nameless@example.com'"))
