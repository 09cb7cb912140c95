"""Contract A9: one AsyncSession used from two tasks fails with `ConcurrentSessionUseError`,
every time, and the unit of work still ends cleanly (no SQLAlchemy state error, no connection
left checked out), in a request and in a transaction block."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import anyio
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from sessionscope import AsyncDbSession, ConcurrentSessionUseError, Database
from sessionscope.testing import app_client

from .models import Base, Item

TRIES = 20


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    Base.metadata.drop_all(database.sync_engine)
    Base.metadata.create_all(database.sync_engine)
    yield database
    Base.metadata.drop_all(database.sync_engine)
    database.close()


def checked_out(db: Database) -> int:
    return int(db.async_engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


def test_gather_on_one_session_in_a_request_raises_our_error_every_time(db: Database) -> None:
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/both")
    async def both(session: AsyncDbSession) -> list[int]:
        results = await asyncio.gather(
            session.scalar(select(func.count()).select_from(Item)),
            session.scalar(select(func.count()).select_from(Item)),
        )
        return [r or 0 for r in results]

    @app.get("/count")
    async def count(session: AsyncDbSession) -> int:
        return await session.scalar(select(func.count()).select_from(Item)) or 0

    raised: list[type[BaseException]] = []
    with app_client(app) as client:
        for _ in range(TRIES):
            try:
                client.get("/both")
            except BaseException as error:
                raised.append(type(error))
            assert checked_out(db) == 0
        # The app goes on serving.
        assert client.get("/count").json() == 0
    gc.collect()
    assert raised == [ConcurrentSessionUseError] * TRIES


def test_gather_on_one_session_in_a_transaction_raises_our_error_every_time(
    db: Database,
) -> None:
    raised: list[type[BaseException]] = []

    async def body() -> None:
        try:
            for _ in range(TRIES):
                try:
                    async with db.transaction() as session:
                        await asyncio.gather(
                            session.execute(select(func.count()).select_from(Item)),
                            session.execute(select(func.count()).select_from(Item)),
                        )
                except BaseException as error:
                    raised.append(type(error))
                assert checked_out(db) == 0
        finally:
            await db.shutdown()

    anyio.run(body)
    gc.collect()
    assert raised == [ConcurrentSessionUseError] * TRIES


def test_an_operation_started_while_the_session_closes_is_refused(db: Database) -> None:
    async def body() -> None:
        try:
            async with db.transaction() as session:
                query = asyncio.ensure_future(session.execute(select(func.count())))
                await asyncio.sleep(0)  # the query task owns the session now
                closing = asyncio.ensure_future(session.close())
                await asyncio.sleep(0)  # close() waits for the query
                with pytest.raises(ConcurrentSessionUseError):
                    await session.execute(select(1))
                await closing
                assert (await query).scalar() == 1
        finally:
            await db.shutdown()

    anyio.run(body)
