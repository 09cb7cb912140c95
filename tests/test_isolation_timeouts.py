"""Contract D3: isolation level and statement timeout per route and per transaction.

Real PostgreSQL and MariaDB (SQLite accepts both options and changes nothing). Each app has
one connection per flavour (``pool_size=1, max_overflow=0``), so "the next request" runs on
the very connection the previous one used: its backend id proves it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sessionscope import (
    AsyncDbSession,
    ConfigurationError,
    Database,
    DbSession,
    SessionScopeError,
    unit_of_work,
)
from sessionscope._retry import is_statement_timeout
from sessionscope._runtime import MAX_KEPT_BINDS, connection_options

LEVEL_SQL = {"postgresql": "SHOW transaction_isolation", "mysql": "SELECT @@session.tx_isolation"}
ID_SQL = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
SLEEP_SQL = {"postgresql": "SELECT pg_sleep(2)", "mysql": "SELECT SLEEP(2)"}
OPEN_TRANSACTIONS_SQL = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity "
    "WHERE pid = :id AND state LIKE 'idle in transaction%'",
    "mysql": "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = :id",
}


def _normal(level: str) -> str:
    return level.upper().replace("-", " ")


def _state_sync(session: Session, backend: str) -> dict[str, Any]:
    level = session.execute(text(LEVEL_SQL[backend])).scalar_one()
    backend_id = session.execute(text(ID_SQL[backend])).scalar_one()
    return {"level": _normal(str(level)), "id": int(backend_id)}


async def _state_async(session: AsyncSession, backend: str) -> dict[str, Any]:
    level = (await session.execute(text(LEVEL_SQL[backend]))).scalar_one()
    backend_id = (await session.execute(text(ID_SQL[backend]))).scalar_one()
    return {"level": _normal(str(level)), "id": int(backend_id)}


def _app(db: Database, backend: str) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)
    serializable = [unit_of_work(isolation="SERIALIZABLE")]
    readonly_serializable = [unit_of_work(readonly=True, isolation="SERIALIZABLE")]
    slow = [unit_of_work(statement_timeout=0.2)]

    @app.get("/sync/level", dependencies=serializable)
    def sync_level(session: DbSession) -> dict[str, Any]:
        return _state_sync(session, backend)

    @app.get("/sync/readonly-level", dependencies=readonly_serializable)
    def sync_readonly_level(session: DbSession) -> dict[str, Any]:
        return _state_sync(session, backend)

    @app.get("/sync/default-level")
    def sync_default_level(session: DbSession) -> dict[str, Any]:
        return _state_sync(session, backend)

    @app.get("/sync/slow", dependencies=slow)
    def sync_slow(session: DbSession) -> None:
        session.execute(text(SLEEP_SQL[backend]))

    @app.get("/async/level", dependencies=serializable)
    async def async_level(session: AsyncDbSession) -> dict[str, Any]:
        return await _state_async(session, backend)

    @app.get("/async/readonly-level", dependencies=readonly_serializable)
    async def async_readonly_level(session: AsyncDbSession) -> dict[str, Any]:
        return await _state_async(session, backend)

    @app.get("/async/default-level")
    async def async_default_level(session: AsyncDbSession) -> dict[str, Any]:
        return await _state_async(session, backend)

    @app.get("/async/slow", dependencies=slow)
    async def async_slow(session: AsyncDbSession) -> None:
        await session.execute(text(SLEEP_SQL[backend]))

    return app


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])  # fmt: skip
def server_url(request: pytest.FixtureRequest) -> str:
    from .conftest import require_server

    return require_server(str(request.param))


@pytest.fixture
def one_connection_client(server_url: str) -> Iterator[tuple[TestClient, str]]:
    backend = make_url(server_url).get_backend_name()
    db = Database(server_url, pool_size=1, max_overflow=0)
    with TestClient(_app(db, backend)) as client:
        yield client, backend


def _default_level(backend: str) -> str:
    return "READ COMMITTED" if backend == "postgresql" else "REPEATABLE READ"


@pytest.mark.parametrize("kind", ["level", "readonly-level"])
def test_a_serializable_route_runs_serializable_and_the_next_request_gets_the_default(
    one_connection_client: tuple[TestClient, str], flavour: str, kind: str
) -> None:
    client, backend = one_connection_client
    before = client.get(f"/{flavour}/default-level").json()
    inside = client.get(f"/{flavour}/{kind}").json()
    after = client.get(f"/{flavour}/default-level").json()
    assert before["level"] == after["level"] == _default_level(backend)
    assert inside["level"] == "SERIALIZABLE"
    assert before["id"] == inside["id"] == after["id"]


def test_a_statement_past_its_timeout_answers_503_and_the_connection_stays_healthy(
    one_connection_client: tuple[TestClient, str],
    flavour: str,
    server_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, backend = one_connection_client
    before = client.get(f"/{flavour}/default-level").json()
    with caplog.at_level(logging.WARNING, logger="sessionscope"):
        response = client.get(f"/{flavour}/slow")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert f"statement cancelled by its timeout in GET /{flavour}/slow" in caplog.text
    after = client.get(f"/{flavour}/default-level").json()
    assert after == before  # the same connection, healthy, at the default level
    engine = create_engine(server_url)
    try:
        with engine.connect() as connection:
            open_transactions = connection.execute(
                text(OPEN_TRANSACTIONS_SQL[backend]), {"id": after["id"]}
            ).scalar_one()
    finally:
        engine.dispose()
    assert open_transactions == 0


def test_the_database_wide_timeout_applies_to_transactions_and_a_block_can_set_its_own(
    server_url: str,
) -> None:
    backend = make_url(server_url).get_backend_name()
    db = Database(server_url, statement_timeout=0.2)
    try:
        with pytest.raises(DBAPIError) as cancelled, db.transaction() as session:
            session.execute(text(SLEEP_SQL[backend]))
        assert is_statement_timeout(cancelled.value)
        with db.transaction(statement_timeout=5) as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
            session.execute(text(SLEEP_SQL[backend].replace("2", "0.3")))
    finally:
        db.close()


def test_timeouts_computed_per_call_apply_and_the_kept_engine_copies_stay_bounded(
    server_url: str,
) -> None:
    # A timeout computed per call (a remaining deadline) is a new option set each time: the
    # runtime keeps the first MAX_KEPT_BINDS copies and makes the others per unit.
    backend = make_url(server_url).get_backend_name()
    db = Database(server_url, pool_size=1, max_overflow=0)
    try:
        for step in range(MAX_KEPT_BINDS + 6):
            with db.transaction(statement_timeout=10 + step / 100) as session:
                assert session.execute(text("SELECT 1")).scalar_one() == 1
        assert len(db._standalone._sync_binds) == MAX_KEPT_BINDS
        # Past the bound, a unit's own timeout still applies.
        with (
            pytest.raises(DBAPIError) as cancelled,
            db.transaction(statement_timeout=0.2) as session,
        ):
            session.execute(text(SLEEP_SQL[backend]))
        assert is_statement_timeout(cancelled.value)
    finally:
        db.close()


def test_async_transaction_isolation_and_timeout(server_url: str) -> None:
    backend = make_url(server_url).get_backend_name()
    db = Database(server_url, pool_size=1, max_overflow=0)

    async def main() -> None:
        try:
            async with db.transaction(isolation="REPEATABLE READ") as session:
                inside = await _state_async(session, backend)
            async with db.transaction() as session:
                after = await _state_async(session, backend)
            assert inside["level"] == "REPEATABLE READ"
            assert after["level"] == _default_level(backend)
            with pytest.raises(DBAPIError) as cancelled:
                async with db.transaction(statement_timeout=0.2) as session:
                    await session.execute(text(SLEEP_SQL[backend]))
                assert is_statement_timeout(cancelled.value)
            async with db.transaction() as session:
                assert (await _state_async(session, backend))["id"] == inside["id"]
        finally:
            await db.async_engine.dispose()

    anyio.run(main)


def test_sqlite_accepts_both_options_and_changes_nothing(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", statement_timeout=0.1)
    try:
        with db.transaction(isolation="SERIALIZABLE", statement_timeout=0.1) as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.close()
    assert connection_options("sqlite", "read", isolation="SERIALIZABLE", statement_timeout=1) == {}


def test_options_decided_in_one_place() -> None:
    assert connection_options("postgresql", "readonly") == {"isolation_level": "AUTOCOMMIT"}
    # A level or a timeout needs a transaction: read-only, not autocommit.
    assert connection_options("postgresql", "readonly", statement_timeout=1.0) == {
        "sessionscope_statement_timeout": 1.0,
        "postgresql_readonly": True,
    }
    assert connection_options("mysql", "write", isolation="SERIALIZABLE") == {
        "isolation_level": "SERIALIZABLE"
    }


def test_bad_options_are_configuration_errors(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="isolation level"):
        unit_of_work(isolation="SNAPSHOT")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="statement_timeout"):
        unit_of_work(statement_timeout=0)
    with pytest.raises(ConfigurationError, match="retries"):
        unit_of_work(retries=-1)
    with pytest.raises(ConfigurationError, match="keep_for_stream"):
        unit_of_work(retries=2, keep_for_stream=True)
    with pytest.raises(ConfigurationError, match="statement_timeout"):
        Database("sqlite://", statement_timeout=-1)
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigurationError, match="isolation level"):
        db.transaction(isolation="serializable")  # type: ignore[arg-type]
    with pytest.raises(SessionScopeError, match="for attempt in"), db.transaction(retries=2):
        pass
    db.close()


def test_a_write_after_a_read_only_unit_with_a_level_on_the_same_connection(
    server_url: str,
) -> None:
    """On PostgreSQL that unit ran in a read-only transaction: the connection must not stay
    read-only for the next unit."""
    db = Database(server_url, pool_size=1, max_overflow=0)
    try:
        with db.transaction(readonly=True, isolation="SERIALIZABLE") as session:
            first = _state_sync(session, make_url(server_url).get_backend_name())
        with db.transaction() as session:
            after = _state_sync(session, make_url(server_url).get_backend_name())
            session.execute(text("CREATE TEMPORARY TABLE written_after_readonly (x INT)"))
            session.execute(text("INSERT INTO written_after_readonly VALUES (1)"))
        assert first["id"] == after["id"]
    finally:
        db.close()
