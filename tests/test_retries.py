"""Contract D2: retry-safe transactions, on real PostgreSQL and MariaDB.

Each worker reads the counter, waits until every worker has read it (first attempt only), then
writes: under SERIALIZABLE every first attempt but one conflicts, deterministically. Retried,
every increment lands once; not retried, the counter equals the number of blocks that
committed (nothing half-applied).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sessionscope import AsyncDbSession, Database, DbSession, after_commit, unit_of_work
from sessionscope._retry import is_retryable

from .conftest import require_server

WORKERS = 10


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])  # fmt: skip
def server_url(request: pytest.FixtureRequest) -> str:
    return require_server(str(request.param))


@contextmanager
def counter_table(url: str) -> Iterator[Table]:
    """A table of two counter rows (ids 1 and 2, at 0), dropped at the end."""
    metadata = MetaData()
    table = Table(
        f"retry_counters_{secrets.token_hex(3)}",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("value", Integer, nullable=False),
    )
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "value": 0}, {"id": 2, "value": 0}])
    try:
        yield table
    finally:
        metadata.drop_all(engine)
        engine.dispose()


@pytest.fixture
def counters(server_url: str) -> Iterator[Table]:
    with counter_table(server_url) as table:
        yield table


def _value(db: Database, table: Table, row: int = 1) -> int:
    with db.transaction(readonly=True) as session:
        return int(session.execute(select(table.c.value).where(table.c.id == row)).scalar_one())


def _increment_sync(session: Session, table: Table, barrier: threading.Barrier | None) -> None:
    value = session.execute(select(table.c.value).where(table.c.id == 1)).scalar_one()
    if barrier is not None:
        barrier.wait(timeout=30)
    session.execute(update(table).where(table.c.id == 1).values(value=value + 1))


@pytest.mark.parametrize("retries", [0, 30])
def test_transaction_retries_from_threads(
    server_url: str, counters: Table, retries: int, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(server_url)
    barrier = threading.Barrier(WORKERS)
    committed: list[int] = []
    failed: list[BaseException] = []
    runs: list[int] = []

    def worker(number: int) -> None:
        try:
            for attempt in db.transaction(isolation="SERIALIZABLE", retries=retries):
                with attempt as session:
                    runs.append(number)
                    after_commit(lambda: committed.append(number))
                    _increment_sync(session, counters, barrier if attempt.number == 0 else None)
        except DBAPIError as error:
            failed.append(error)

    try:
        with caplog.at_level(logging.WARNING, logger="sessionscope"):
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
        final = _value(db, counters)
    finally:
        db.close()
    assert all(is_retryable(error) for error in failed)
    assert final == len(committed)
    assert sorted(committed) == sorted(set(committed))  # after_commit once per committed block
    if retries:
        assert final == WORKERS
        assert not failed
        assert len(runs) > WORKERS  # blocks did run again ...
        assert caplog.text.count("running it again") == len(runs) - WORKERS  # ... each logged
    else:
        assert failed  # the first attempts conflict
        assert final == WORKERS - len(failed)


@pytest.mark.parametrize("retries", [0, 30])
def test_transaction_retries_from_tasks(server_url: str, counters: Table, retries: int) -> None:
    db = Database(server_url)
    committed: list[int] = []
    failed: list[BaseException] = []

    async def main() -> None:
        barrier = asyncio.Barrier(WORKERS)
        first_run: set[int] = set()

        @db.transaction(isolation="SERIALIZABLE", retries=retries)
        async def increment(session: AsyncSession, number: int) -> int:
            after_commit(lambda: committed.append(number))
            query = select(counters.c.value).where(counters.c.id == 1)
            value = (await session.execute(query)).scalar_one()
            if number not in first_run:
                first_run.add(number)
                await asyncio.wait_for(barrier.wait(), 30)
            await session.execute(
                update(counters).where(counters.c.id == 1).values(value=value + 1)
            )
            return int(value) + 1

        async def worker(number: int) -> None:
            try:
                await increment(number)
            except DBAPIError as error:
                failed.append(error)

        try:
            async with anyio.create_task_group() as group:
                for number in range(WORKERS):
                    group.start_soon(worker, number)
        finally:
            await db.async_engine.dispose()

    anyio.run(main)
    try:
        final = _value(db, counters)
    finally:
        db.close()
    assert all(is_retryable(error) for error in failed)
    assert final == len(committed)
    if retries:
        assert final == WORKERS
    else:
        assert failed


def test_the_decorated_function_returns_its_value_and_takes_arguments(
    server_url: str, counters: Table
) -> None:
    db = Database(server_url)

    @db.transaction(retries=2)
    def add(session: Session, amount: int, *, row: int) -> int:
        session.execute(
            update(counters).where(counters.c.id == row).values(value=counters.c.value + amount)
        )
        return amount

    try:
        assert add(5, row=2) == 5
        assert _value(db, counters, row=2) == 5
    finally:
        db.close()


@pytest.mark.parametrize("flavour_", ["sync", "async"])
def test_a_deadlock_is_retried_and_both_transactions_complete(
    server_url: str, counters: Table, flavour_: str
) -> None:
    """Two transactions lock rows 1 and 2 in opposite order: the database kills one of them
    (40P01 / 1213); retried, both complete."""
    db = Database(server_url)
    table = counters
    done: list[str] = []

    def order_of(name: str) -> tuple[int, int]:
        return (1, 2) if name == "a" else (2, 1)

    if flavour_ == "sync":
        barrier = threading.Barrier(2)

        def worker(name: str) -> None:
            for attempt in db.transaction(retries=5):
                with attempt as session:
                    first, second = order_of(name)
                    _bump_sync(session, table, first)
                    if attempt.number == 0:
                        barrier.wait(timeout=30)
                    _bump_sync(session, table, second)
            done.append(name)

        threads = [threading.Thread(target=worker, args=(name,)) for name in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    else:

        async def main() -> None:
            async_barrier = asyncio.Barrier(2)

            async def worker(name: str) -> None:
                async for attempt in db.transaction(retries=5):
                    async with attempt as session:
                        first, second = order_of(name)
                        await _bump_async(session, table, first)
                        if attempt.number == 0:
                            await asyncio.wait_for(async_barrier.wait(), 30)
                        await _bump_async(session, table, second)
                done.append(name)

            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(worker, "a")
                    group.start_soon(worker, "b")
            finally:
                await db.async_engine.dispose()

        anyio.run(main)
    try:
        assert sorted(done) == ["a", "b"]
        assert _value(db, table, 1) == _value(db, table, 2) == 2
    finally:
        db.close()


def _bump_sync(session: Session, table: Table, row: int) -> None:
    session.execute(update(table).where(table.c.id == row).values(value=table.c.value + 1))


async def _bump_async(session: AsyncSession, table: Table, row: int) -> Any:
    await session.execute(update(table).where(table.c.id == row).values(value=table.c.value + 1))


@pytest.mark.postgres
@pytest.mark.parametrize("flavour_", ["sync", "async"])
def test_a_request_runs_again_with_the_same_body_and_after_commit_runs_once(
    flavour_: str,
) -> None:
    """The first run reads the counter, another connection then changes it and commits: the
    first run's UPDATE fails with 40001 (REPEATABLE READ), the route runs again, whole."""
    url = require_server("postgres")
    with counter_table(url) as counters:
        _run_again_once(url, counters, flavour_)


def _run_again_once(url: str, counters: Table, flavour_: str) -> None:
    db = Database(url)
    other = create_engine(url)
    runs: list[int] = []
    callbacks: list[int] = []
    app = FastAPI(lifespan=db.lifespan)
    retried = [unit_of_work(isolation="REPEATABLE READ", retries=2)]

    def interfere() -> None:
        if len(runs) == 1:
            with other.begin() as connection:
                connection.execute(update(counters).values(value=counters.c.value + 100))

    @app.post("/sync/add", dependencies=retried)
    def sync_add(body: dict[str, int], session: DbSession) -> int:
        runs.append(body["by"])
        after_commit(lambda: callbacks.append(len(runs)))
        value = session.execute(select(counters.c.value).where(counters.c.id == 1)).scalar_one()
        interfere()
        session.execute(update(counters).where(counters.c.id == 1).values(value=value + body["by"]))
        return int(value) + body["by"]

    @app.post("/async/add", dependencies=retried)
    async def async_add(body: dict[str, int], session: AsyncDbSession) -> int:
        runs.append(body["by"])
        after_commit(lambda: callbacks.append(len(runs)))
        query = select(counters.c.value).where(counters.c.id == 1)
        value = (await session.execute(query)).scalar_one()
        interfere()
        await session.execute(
            update(counters).where(counters.c.id == 1).values(value=value + body["by"])
        )
        return int(value) + body["by"]

    try:
        with TestClient(app) as client:
            response = client.post(f"/{flavour_}/add", json={"by": 7})
        assert response.status_code == 200
        assert response.json() == 107
        assert runs == [7, 7]
        assert callbacks == [2]
    finally:
        other.dispose()
        db.close()


LOCK_WAIT_LIMIT = {
    # A lock wait gives up after 1 s (MariaDB counts whole seconds).
    "postgresql": {"options": "-c lock_timeout=1000"},
    "mysql": {"init_command": "SET SESSION innodb_lock_wait_timeout=1"},
}


@pytest.mark.parametrize("retry_lock_timeouts", [True, False])
def test_lock_wait_timeouts_are_retried_only_when_configured(
    server_url: str, counters: Table, retry_lock_timeouts: bool
) -> None:
    """Another connection holds row 1 for 1.5 s; the block's lock wait times out after 1 s
    (1205 / 55P03): re-run, it finds the row free."""
    backend = make_url(server_url).get_backend_name()
    db = Database(
        server_url,
        retry_lock_timeouts=retry_lock_timeouts,
        engine_options={"connect_args": LOCK_WAIT_LIMIT[backend]},
    )
    holder = create_engine(server_url)
    locked = threading.Event()

    def hold() -> None:
        with holder.begin() as connection:
            _bump_connection(connection, counters)
            locked.set()
            threading.Event().wait(1.5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(30)

        @db.transaction(retries=5)
        def bump(session: Session) -> None:
            _bump_sync(session, counters, 1)

        if retry_lock_timeouts:
            bump()
            assert _value(db, counters) == 2
        else:
            with pytest.raises(DBAPIError) as timed_out:
                bump()
            assert is_retryable(timed_out.value, lock_timeouts=True)
            assert not is_retryable(timed_out.value)
    finally:
        thread.join(30)
        holder.dispose()
        db.close()


def _bump_connection(connection: Any, table: Table) -> None:
    connection.execute(update(table).where(table.c.id == 1).values(value=table.c.value + 1))


@pytest.mark.postgres
def test_a_request_that_used_another_database_does_not_run_again() -> None:
    url = require_server("postgres")
    with counter_table(url) as counters:
        db = Database(url)
        other_db = Database(url, name="other")
        other = create_engine(url)
        runs: list[int] = []
        app = FastAPI()
        db.init_app(app)  # attached first: DbSession is db's
        other_db.init_app(app)

        async def open_other(request: Request) -> None:
            request.state.second = await other_db.get_session(request)

        retried = unit_of_work(isolation="REPEATABLE READ", retries=2)

        @app.post("/add", dependencies=[retried, Depends(open_other)])
        def add(session: DbSession, request: Request) -> None:
            runs.append(1)
            second: Session = request.state.second
            second.execute(update(counters).where(counters.c.id == 2).values(value=1))
            value = session.execute(select(counters.c.value).where(counters.c.id == 1)).scalar_one()
            if len(runs) == 1:
                with other.begin() as connection:
                    connection.execute(
                        update(counters)
                        .where(counters.c.id == 1)
                        .values(value=counters.c.value + 100)
                    )
            session.execute(update(counters).where(counters.c.id == 1).values(value=value + 1))

        try:
            with TestClient(app) as client:
                response = client.post("/add")
            assert response.status_code == 503
            assert runs == [1]
        finally:
            other.dispose()
            db.close()
            other_db.close()
