"""Real failures, provoked on the real databases through every supported driver, classified.

Each scenario runs on a connection of the driver under test; async drivers run the same
scenario through ``AsyncConnection.run_sync``, so the error is the async driver's own.
A second, sync connection (the "other client") holds locks or kills the first one.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from sessionscope._classify import FailureKind, classify
from sessionscope._policy import http_error_for
from sessionscope._retry import is_retryable

from .conftest import require_server

TABLE = "classify_probe"

# driver → (backend, drivername)
DRIVERS = {
    "pysqlite": ("sqlite", "sqlite+pysqlite"),
    "aiosqlite": ("sqlite", "sqlite+aiosqlite"),
    "psycopg": ("postgres", "postgresql+psycopg"),
    "psycopg_async": ("postgres", "postgresql+psycopg_async"),
    "asyncpg": ("postgres", "postgresql+asyncpg"),
    "pymysql": ("mariadb", "mysql+pymysql"),
    "aiomysql": ("mariadb", "mysql+aiomysql"),
}
ASYNC_DRIVERS = {"aiosqlite", "psycopg_async", "asyncpg", "aiomysql"}
SYNC_TWIN = {
    "sqlite": "sqlite+pysqlite",
    "postgres": "postgresql+psycopg",
    "mariadb": "mysql+pymysql",
}


def _params(*names: str) -> list[object]:
    marks = {"postgres": pytest.mark.postgres, "mariadb": pytest.mark.mariadb}
    return [
        pytest.param(
            name, id=name, marks=[marks[DRIVERS[name][0]]] if DRIVERS[name][0] in marks else []
        )
        for name in names
    ]


ALL = _params(*DRIVERS)
SERVERS = _params("psycopg", "psycopg_async", "asyncpg", "pymysql", "aiomysql")
POSTGRES = _params("psycopg", "psycopg_async", "asyncpg")

Scenario = Callable[[Connection], object]


def failure_of(url: str, scenario: Scenario, **connect_args: object) -> BaseException:
    """The exception ``scenario`` raises on a fresh connection to ``url``."""
    try:
        if make_url(url).get_dialect().is_async:
            asyncio.run(_run_async(url, scenario, connect_args))
        else:
            engine = create_engine(url, connect_args=connect_args)
            try:
                with engine.connect() as connection:
                    scenario(connection)
            finally:
                engine.dispose()
    except Exception as error:
        return error
    raise AssertionError("the scenario did not fail")


async def _run_async(url: str, scenario: Scenario, connect_args: dict[str, object]) -> None:
    engine = create_async_engine(url, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(scenario)
    finally:
        await engine.dispose()
        # After a failed connect aiosqlite stops its worker thread without waiting for it,
        # and the thread then reports to this event loop: keep the loop open until it ends.
        workers = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
        await asyncio.to_thread(lambda: [worker.join() for worker in workers])


@pytest.fixture(params=ALL)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sync_url(driver: str, tmp_path: Path) -> str:
    """The database of the driver's backend, as a sync URL (for the other client)."""
    backend = DRIVERS[driver][0]
    if backend == "sqlite":
        return f"sqlite+pysqlite:///{tmp_path / 'probe.db'}"
    return (
        make_url(require_server(backend))
        .set(drivername=SYNC_TWIN[backend])
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def url(driver: str, sync_url: str) -> str:
    return (
        make_url(sync_url).set(drivername=DRIVERS[driver][1]).render_as_string(hide_password=False)
    )


@pytest.fixture
def other(sync_url: str) -> Iterator[Connection]:
    """Another client's connection, with the probe table holding one row."""
    engine = create_engine(sync_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        connection.exec_driver_sql(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, n INTEGER)")
        connection.exec_driver_sql(f"INSERT INTO {TABLE} VALUES (1, 0)")
        try:
            yield connection
        finally:
            connection.rollback()
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
    engine.dispose()


def _assert_kind(error: BaseException, kind: FailureKind) -> None:
    assert classify(error) == kind, f"{type(error).__name__}: {error}"
    at_endpoint = http_error_for(error, retry_after=2, at_commit=False)
    at_commit = http_error_for(error, retry_after=2, at_commit=True)
    if kind == "other":
        assert at_endpoint is None  # a bug in the app: its traceback reaches the server's log
        assert at_commit is not None
        assert at_commit.status_code == 500
    else:
        assert at_endpoint is not None
        assert at_commit is not None
        assert at_endpoint.status_code == at_commit.status_code == 503
        assert at_endpoint.headers == {"Retry-After": "2"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_missing_table_is_a_bug_not_an_outage(driver: str, url: str, other: Connection) -> None:
    error = failure_of(url, lambda c: c.execute(text("SELECT * FROM no_such_table")))
    _assert_kind(error, "other")
    assert not is_retryable(error)


def test_a_refused_connection_is_unavailable(driver: str, url: str, tmp_path: Path) -> None:
    if DRIVERS[driver][0] == "sqlite":  # SQLite's refusal: a file that cannot be opened
        closed = make_url(url).set(database=str(tmp_path / "missing" / "x.db")).render_as_string()
    else:
        closed = make_url(url).set(port=_closed_port()).render_as_string(hide_password=False)
    _assert_kind(failure_of(closed, lambda c: c.execute(text("SELECT 1"))), "unavailable")


@pytest.mark.parametrize("driver", SERVERS, indirect=True)
def test_a_killed_connection_is_unavailable(driver: str, url: str, other: Connection) -> None:
    def killed(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            # pg_terminate_backend() with a timeout returns once the backend has exited.
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 10000)")
        else:
            thread_id = connection.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            other.exec_driver_sql(f"KILL CONNECTION {thread_id}")
        connection.exec_driver_sql(f"SELECT n FROM {TABLE}")

    _assert_kind(failure_of(url, killed), "unavailable")


def test_a_lock_timeout_is_contention(driver: str, url: str, other: Connection) -> None:
    backend = DRIVERS[driver][0]
    connect_args: dict[str, object] = {}
    if backend == "sqlite":
        other.exec_driver_sql("BEGIN IMMEDIATE")  # holds SQLite's write lock
        connect_args = {"timeout": 0}
    else:
        other.exec_driver_sql("BEGIN")
        other.exec_driver_sql(f"UPDATE {TABLE} SET n = n + 1 WHERE id = 1")

    def blocked(connection: Connection) -> None:
        if backend == "postgres":
            connection.exec_driver_sql("SET lock_timeout = '10ms'")
        elif backend == "mariadb":
            connection.exec_driver_sql("SET innodb_lock_wait_timeout = 1")
        connection.exec_driver_sql(f"UPDATE {TABLE} SET n = n + 1 WHERE id = 1")

    error = failure_of(url, blocked, **connect_args)
    _assert_kind(error, "contention")
    assert not is_retryable(error)
    if backend == "sqlite":
        orig = getattr(error, "orig", None)
        assert isinstance(orig, sqlite3.OperationalError)
        # The code is on the exception from Python 3.11; before, only the message says it.
        busy = 5  # SQLITE_BUSY (sqlite3 names it from Python 3.11)
        assert getattr(orig, "sqlite_errorcode", busy) == busy
        assert "locked" in str(orig)


@pytest.mark.parametrize("driver", POSTGRES, indirect=True)
def test_a_serialization_failure_is_retryable_contention(
    driver: str, url: str, other: Connection
) -> None:
    def stale_update(connection: Connection) -> None:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        connection.exec_driver_sql(f"SELECT n FROM {TABLE} WHERE id = 1")  # takes the snapshot
        other.exec_driver_sql(f"UPDATE {TABLE} SET n = n + 1 WHERE id = 1")
        connection.exec_driver_sql(f"UPDATE {TABLE} SET n = n + 1 WHERE id = 1")

    error = failure_of(url, stale_update)
    _assert_kind(error, "contention")
    assert is_retryable(error)


@pytest.fixture
def full_role(sync_url: str) -> Iterator[str]:
    """A login allowed no connection (PostgreSQL) or one, already taken (MariaDB)."""
    engine = create_engine(sync_url, isolation_level="AUTOCOMMIT")
    database = make_url(sync_url).database
    role = f"{database}_full"
    with engine.connect() as admin:
        if engine.dialect.name == "postgresql":
            admin.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
            admin.exec_driver_sql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
            try:
                yield role
            finally:
                admin.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        else:
            admin.exec_driver_sql(f"DROP USER IF EXISTS '{role}'@'127.0.0.1'")
            admin.exec_driver_sql(f"CREATE USER '{role}'@'127.0.0.1' WITH MAX_USER_CONNECTIONS 1")
            admin.exec_driver_sql(f"GRANT SELECT ON {database}.* TO '{role}'@'127.0.0.1'")
            occupant = create_engine(make_url(sync_url).set(username=role, password=None))
            try:
                with occupant.connect():
                    yield role
            finally:
                occupant.dispose()
                admin.exec_driver_sql(f"DROP USER IF EXISTS '{role}'@'127.0.0.1'")
    engine.dispose()


@pytest.mark.parametrize("driver", SERVERS, indirect=True)
def test_too_many_connections_is_unavailable(driver: str, url: str, full_role: str) -> None:
    crowded = make_url(url).set(username=full_role, password=None)
    error = failure_of(crowded.render_as_string(hide_password=False), lambda c: None)
    assert "connection" in str(error).lower()
    _assert_kind(error, "unavailable")
