"""`sessionscope.testing` without pytest fixtures: bindings, clients and what they guarantee,
on every backend, sync and async."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
from binding_app import (
    Schema,
    async_app,
    names_async,
    names_sync,
    schema,
    sync_app,
)
from fastapi import FastAPI
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sessionscope import Database, SessionScopeError
from sessionscope.testing import (
    app_client,
    async_app_client,
    async_rollback_after,
    rollback_after,
)


@pytest.fixture
def table(database_url: str) -> Iterator[str]:
    name = f"tst_bind_{uuid.uuid4().hex[:10]}"
    yield name
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
    finally:
        engine.dispose()


@pytest.fixture
def store(database_url: str, table: str) -> Iterator[tuple[Database, Schema]]:
    db = Database(database_url, manual_commit="allow")  # its apps commit by hand on purpose
    tables = schema(table)
    tables.create_sync(db)
    yield db, tables
    anyio.run(db.shutdown)


def real_rows(db: Database, tables: Schema) -> int:
    """Rows committed for real, seen through a connection of the engine outside any binding."""
    with db.sync_engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(tables.items)) or 0


def run_app_scenario(db: Database, tables: Schema, flavour: str) -> dict[str, object]:
    """Drive the app through the binding and client of ``flavour``; report what was seen."""
    seen: dict[str, object] = {}
    if flavour == "sync":
        with rollback_after(db) as bound, app_client(sync_app(db, tables.items)) as client:
            seen["twice"] = client.post("/twice/a").json()["names"]
            seen["created"] = client.post("/items/kept").status_code
            seen["rejected"] = client.post("/reject/gone").status_code
            seen["conflict"] = client.post("/items/kept").status_code
            seen["api"] = client.get("/items").json()
            seen["test"] = names_sync(bound.session(), tables.items)
        return seen

    async def drive() -> None:
        async with (
            async_rollback_after(db) as bound,
            async_app_client(async_app(db, tables.items)) as client,
        ):
            seen["twice"] = (await client.post("/twice/a")).json()["names"]
            seen["created"] = (await client.post("/items/kept")).status_code
            seen["rejected"] = (await client.post("/reject/gone")).status_code
            seen["conflict"] = (await client.post("/items/kept")).status_code
            seen["api"] = (await client.get("/items")).json()
            seen["test"] = await names_async(bound.session(), tables.items)

    anyio.run(drive)
    return seen


EXPECTED = {
    # commit, rollback, commit inside one request: the rolled-back write alone is gone
    "twice": ["a-1", "a-2"],
    "created": 201,
    # a 4xx rolls back to the request's savepoint, not the test's outer transaction
    "rejected": 400,
    # an IntegrityError (409) leaves the outer transaction usable (PostgreSQL aborts it
    # otherwise)
    "conflict": 409,
    "api": ["a-1", "a-2", "kept"],
    "test": ["a-1", "a-2", "kept"],
}


def test_app_commits_and_rollbacks_stay_inside_the_test(
    store: tuple[Database, Schema], flavour: str
) -> None:
    db, tables = store
    assert run_app_scenario(db, tables, flavour) == EXPECTED
    assert real_rows(db, tables) == 0


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_app_commits_and_rollbacks_stay_inside_the_test_in_memory(flavour: str) -> None:
    db = Database("sqlite://", manual_commit="allow")
    tables = schema("tst_bind_items")
    tables.create_sync(db)
    anyio.run(tables.create_async, db)
    try:
        assert run_app_scenario(db, tables, flavour) == EXPECTED
        assert real_rows(db, tables) == 0
    finally:
        anyio.run(db.shutdown)


def insert_then_fail(db: Database, tables: Schema) -> None:
    with db.transaction() as session:
        session.execute(tables.items.insert().values(name="rolled back"))
        raise RuntimeError


def test_transaction_blocks_join_the_test_transaction(store: tuple[Database, Schema]) -> None:
    db, tables = store
    items = tables.items
    with rollback_after(db) as bound:
        with db.transaction() as session:
            session.execute(items.insert().values(name="committed"))
        with pytest.raises(RuntimeError):
            insert_then_fail(db, tables)
        assert names_sync(bound.session(), items) == ["committed"]
    assert real_rows(db, tables) == 0


def test_async_transaction_blocks_join_the_test_transaction(
    store: tuple[Database, Schema],
) -> None:
    db, tables = store
    items = tables.items

    async def scenario() -> list[str]:
        async with async_rollback_after(db) as bound:
            async with db.transaction() as session:
                await session.execute(items.insert().values(name="committed"))
            with pytest.raises(RuntimeError):
                await insert_then_fail_async()
            # gather() shares the bound connection, one call at a time
            counts = await db.gather(count_async, count_async, count_async, limit=3)
            assert counts == [1, 1, 1]
            return await names_async(bound.session(), items)

    async def insert_then_fail_async() -> None:
        async with db.transaction() as session:
            await session.execute(items.insert().values(name="rolled back"))
            raise RuntimeError

    async def count_async(session: AsyncSession) -> int:
        return await session.scalar(select(func.count()).select_from(items)) or 0

    assert anyio.run(scenario) == ["committed"]
    assert real_rows(db, tables) == 0


def test_a_failing_block_still_rolls_back(store: tuple[Database, Schema]) -> None:
    db, tables = store

    async def fail_async() -> None:
        async with async_rollback_after(db) as bound:
            session = bound.session()
            await session.execute(tables.items.insert().values(name="async"))
            await session.commit()
            raise ZeroDivisionError

    def fail_sync() -> None:
        with rollback_after(db) as bound:
            session = bound.session()
            session.execute(tables.items.insert().values(name="sync"))
            session.commit()
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_sync()
    with pytest.raises(ZeroDivisionError):
        anyio.run(fail_async)
    assert real_rows(db, tables) == 0


def test_the_unbound_flavour_is_refused(store: tuple[Database, Schema]) -> None:
    db, _ = store

    async def open_async() -> None:
        async with db.transaction():
            pass

    refusal = r"an async session here would write outside .* async_rollback_after\(db\)"
    with rollback_after(db), pytest.raises(SessionScopeError, match=refusal):
        anyio.run(open_async)

    async def open_sync_under_async_binding() -> None:
        async with async_rollback_after(db):
            await anyio.to_thread.run_sync(enter_sync_transaction)

    def enter_sync_transaction() -> None:
        with db.transaction():
            pass

    refusal = r"a sync session here would write outside .* `sessionscope_client` fixture"
    with pytest.raises(SessionScopeError, match=refusal):
        anyio.run(open_sync_under_async_binding)


def test_binding_twice_is_refused(store: tuple[Database, Schema]) -> None:
    db, _ = store
    with rollback_after(db), pytest.raises(SessionScopeError, match="already bound"):
        rollback_after(db).__enter__()


def test_the_lifespan_runs_inside_the_binding(store: tuple[Database, Schema]) -> None:
    db, tables = store
    items = tables.items

    @asynccontextmanager
    async def seeding_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with db.transaction() as session:
            await session.execute(items.insert().values(name="seed"))
        yield

    app = FastAPI(lifespan=seeding_lifespan)
    db.init_app(app)

    async def scenario() -> list[str]:
        async with async_rollback_after(db) as bound:
            async with async_app_client(app):
                pass
            # the app's shutdown kept the engine: the bound connection still works
            return await names_async(bound.session(), items)

    assert anyio.run(scenario) == ["seed"]
    assert real_rows(db, tables) == 0
