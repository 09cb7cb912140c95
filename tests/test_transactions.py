"""Contract D1 (units of work outside requests), A8 in transactions, A9, B3."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import anyio
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sessionscope import (
    BlockingSessionError,
    ConcurrentSessionUseError,
    Database,
    SessionClosedError,
    SessionScopeError,
    after_commit,
)

from .models import Base, Item


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    Base.metadata.drop_all(database.sync_engine)
    Base.metadata.create_all(database.sync_engine)
    yield database
    Base.metadata.drop_all(database.sync_engine)
    database.sync_engine.dispose()


def count(db: Database) -> int:
    with db.transaction(readonly=True) as session:
        return session.scalar(select(func.count()).select_from(Item)) or 0


def run_async(db: Database, body: object) -> None:
    async def main() -> None:
        try:
            await body()  # type: ignore[operator]
        finally:
            await db.async_engine.dispose()

    anyio.run(main)


def test_sync_transaction_commits_rolls_back_and_closes(db: Database) -> None:
    with db.transaction() as session:
        session.add(Item(name="a"))
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.add(Item(name="b"))
        session.flush()
        raise RuntimeError
    assert count(db) == 1
    with pytest.raises(SessionClosedError, match=r"db\.transaction\(\)"):
        session.execute(select(1))
    assert db.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_async_transaction_commits_rolls_back_and_closes(db: Database) -> None:
    async def body() -> None:
        async with db.transaction() as session:
            session.add(Item(name="a"))
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                session.add(Item(name="b"))
                await session.flush()
                raise RuntimeError
        with pytest.raises(SessionClosedError):
            await session.execute(select(1))
        assert db.async_engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]

    run_async(db, body)
    assert count(db) == 1


def test_failed_commit_raises_the_database_error(db: Database) -> None:
    with db.transaction() as session:
        session.add(Item(name="same"))
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(Item(name="same"))
    assert count(db) == 1


def test_readonly_transaction_refuses_writes_like_a_readonly_route(db: Database) -> None:
    with (
        pytest.raises(SessionScopeError, match="read-only"),
        db.transaction(readonly=True) as session,
    ):
        session.add(Item(name="draft"))
        session.flush()
    with pytest.raises(SessionScopeError, match="read-only"), db.transaction(readonly=True) as s:
        s.execute(insert(Item).values(name="statement"))
    assert count(db) == 0


def test_after_commit_in_transactions(db: Database) -> None:
    calls: list[str] = []
    with db.transaction():
        after_commit(lambda: calls.append("sync committed"))
    with pytest.raises(RuntimeError), db.transaction():
        after_commit(lambda: calls.append("never"))
        raise RuntimeError

    async def body() -> None:
        async with db.transaction() as session:

            async def record() -> None:
                calls.append("async committed")

            after_commit(record, session=session)

    run_async(db, body)
    assert calls == ["sync committed", "async committed"]


def test_after_commit_outside_a_unit_is_refused() -> None:
    with pytest.raises(SessionScopeError, match="no unit of work"):
        after_commit(lambda: None)


def test_sync_transaction_on_the_event_loop_is_refused(db: Database) -> None:
    async def body() -> None:
        with pytest.raises(BlockingSessionError, match="event loop"), db.transaction():
            pass

    run_async(db, body)


def test_sync_transaction_on_the_event_loop_can_warn(
    database_url: str, shut_down_after: Callable[[Database], Database]
) -> None:
    db = shut_down_after(Database(database_url, sync_in_async="warn"))

    async def body() -> None:
        with pytest.warns(RuntimeWarning, match="event loop"), db.transaction(readonly=True):
            pass

    run_async(db, body)


def test_one_async_session_in_two_tasks_fails_deterministically(db: Database) -> None:
    async def body() -> None:
        for _ in range(3):
            async with db.transaction(readonly=True) as session:
                outcomes = await asyncio.gather(
                    session.execute(select(func.count()).select_from(Item)),
                    session.execute(select(func.count()).select_from(Item)),
                    return_exceptions=True,
                )
                errors = [o for o in outcomes if isinstance(o, BaseException)]
                assert len(errors) == 1
                assert isinstance(errors[0], ConcurrentSessionUseError)
                assert "gather" in str(errors[0])

    run_async(db, body)


def test_gather_runs_each_call_in_its_own_session(db: Database) -> None:
    with db.transaction() as session:
        session.add_all([Item(name="x"), Item(name="y")])
    sessions: list[AsyncSession] = []

    async def total(session: AsyncSession) -> int:
        sessions.append(session)
        await anyio.sleep(0.01)
        return await session.scalar(select(func.count()).select_from(Item)) or 0

    async def first_name(session: AsyncSession) -> str | None:
        sessions.append(session)
        return await session.scalar(select(Item.name).order_by(Item.name))

    async def body() -> None:
        results = await db.gather(total, first_name, total, limit=2)
        assert results == [2, "x", 2]

    run_async(db, body)
    assert len({id(s) for s in sessions}) == 3
