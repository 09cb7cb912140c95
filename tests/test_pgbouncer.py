"""Contract F4: ``pgbouncer=True`` makes psycopg and asyncpg work behind a real PgBouncer in
transaction pooling mode (3 server connections for many more clients).

Without the switch the same load fails with the prepared-statement errors PgBouncer users
know ("prepared statement ... does not exist" / "already exists"): the test proves the switch
matters. The core request scenarios then run through PgBouncer, sync and async.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from sessionscope import ConfigurationError, Database, DatabaseSettings

from .apps import async_app, sync_app
from .conftest import require_server
from .models import Base, Item
from .pgbouncer import require_pgbouncer, run_pgbouncer

pytestmark = pytest.mark.postgres

TASKS = 20
TRANSACTIONS = 15


@pytest.fixture(scope="module")
def pgbouncer_url() -> Iterator[str]:
    server_url = require_server("postgres")
    require_pgbouncer()
    with run_pgbouncer(server_url, pool_size=3) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def rows_table() -> Iterator[Table]:
    server_url = require_server("postgres")
    metadata = MetaData()
    table = Table(
        f"pgb_rows_{secrets.token_hex(3)}",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("worker", Integer, nullable=False),
        Column("n", Integer, nullable=False),
    )
    engine = create_engine(server_url)
    metadata.create_all(engine)
    yield table
    metadata.drop_all(engine)
    engine.dispose()


def _statements(table: Table) -> tuple[Any, Any, Any]:
    insert = table.insert()
    count = select(func.count()).select_from(table).where(table.c.worker == text(":w"))
    total = select(func.coalesce(func.sum(table.c.n), 0)).where(table.c.worker == text(":w"))
    return insert, count, total


def _load_sync(db: Database, table: Table) -> list[str]:
    insert, count, total = _statements(table)
    failures: list[str] = []

    def worker(number: int) -> None:
        for step in range(TRANSACTIONS):
            try:
                if step % 3 == 2:
                    with db.transaction(readonly=True) as session:
                        session.execute(count, {"w": number}).scalar_one()
                        session.execute(total, {"w": number}).scalar_one()
                    continue
                with db.transaction() as session:
                    session.execute(insert, {"worker": number, "n": step})
                    session.execute(count, {"w": number}).scalar_one()
                    session.execute(total, {"w": number}).scalar_one()
            except DBAPIError as error:
                failures.append(str(error.orig))

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(TASKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return failures


def _load_async(db: Database, table: Table) -> list[str]:
    insert, count, total = _statements(table)
    failures: list[str] = []

    async def worker(number: int) -> None:
        for step in range(TRANSACTIONS):
            try:
                if step % 3 == 2:
                    async with db.transaction(readonly=True) as session:
                        (await session.execute(count, {"w": number})).scalar_one()
                        (await session.execute(total, {"w": number})).scalar_one()
                    continue
                async with db.transaction() as session:
                    await session.execute(insert, {"worker": number, "n": step})
                    (await session.execute(count, {"w": number})).scalar_one()
                    (await session.execute(total, {"w": number})).scalar_one()
            except DBAPIError as error:
                failures.append(str(error.orig))

    async def main() -> None:
        try:
            async with anyio.create_task_group() as group:
                for number in range(TASKS):
                    group.start_soon(worker, number)
        finally:
            await db.async_engine.dispose()

    anyio.run(main)
    return failures


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
@pytest.mark.parametrize("switch", [True, False], ids=["pgbouncer", "plain"])
def test_concurrent_transactions_through_pgbouncer(
    pgbouncer_url: str, rows_table: Table, driver: str, switch: bool
) -> None:
    db = Database(pgbouncer_url, pgbouncer=switch, pool_size=5, max_overflow=20)
    try:
        if driver == "psycopg":
            failures = _load_sync(db, rows_table)
        else:
            failures = _load_async(db, rows_table)
        with db.transaction(readonly=True) as session:
            written = session.execute(select(func.count()).select_from(rows_table)).scalar_one()
    finally:
        db.close()
    if switch:
        assert failures == []
        assert written == TASKS * (TRANSACTIONS - TRANSACTIONS // 3)
    else:
        assert failures
        assert any("prepared statement" in failure for failure in failures), failures[:3]


@pytest.fixture
def bounced_db(pgbouncer_url: str) -> Iterator[Database]:
    server = create_engine(require_server("postgres"))
    Base.metadata.drop_all(server)
    Base.metadata.create_all(server)
    db = Database(pgbouncer_url, pgbouncer=True, pool_size=3, max_overflow=5)
    yield db
    db.close()
    Base.metadata.drop_all(server)
    server.dispose()


def test_request_scenarios_pass_through_pgbouncer(bounced_db: Database, flavour: str) -> None:
    app = (sync_app if flavour == "sync" else async_app).build(bounced_db)
    with TestClient(app, raise_server_exceptions=False) as client:
        for number in range(12):  # past psycopg's prepare threshold on every connection
            assert client.post("/items", params={"name": f"item-{number}"}).status_code == 201
        assert client.post("/items", params={"name": "item-0"}).status_code == 409
        assert client.post("/items/returned-400", params={"name": "refused"}).status_code == 400
        for _ in range(12):
            # Behind PgBouncer a read-only unit runs in a read-only transaction.
            assert client.get("/readonly/count").json() == {
                "count": 12,
                "statement_in_own_transaction": False,
            }
        assert client.get("/items/count").json() == 12
        assert client.get("/stream").status_code == 200
    with bounced_db.transaction(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 12


def test_the_switch_reads_the_environment_and_wants_postgresql(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app@pgbouncer:6432/app")
    monkeypatch.setenv("DATABASE_PGBOUNCER", "true")
    assert DatabaseSettings().to_config().pgbouncer is True
    with pytest.raises(ConfigurationError, match="pgbouncer=True is for PostgreSQL"):
        Database("mysql+pymysql://root@localhost/app", pgbouncer=True)
