"""The classification of database errors, enumerated with the drivers' own exception classes.

These are the failures a test cannot provoke on the shared servers (a server starting up or
crashing, a MySQL server shutting down); tests/test_classify_databases.py provokes the rest
on the real databases.
"""

from __future__ import annotations

import errno
import socket
import sqlite3

import asyncpg.exceptions
import psycopg
import psycopg.errors
import pymysql.err
import pytest
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc

from sessionscope._classify import FailureKind, classify, is_transient
from sessionscope._retry import is_retryable


def _wrapped(
    orig: BaseException, cls: type[sa_exc.DBAPIError] = sa_exc.DBAPIError
) -> BaseException:
    """``orig`` as SQLAlchemy raises it: wrapped in a DBAPIError subclass."""
    return cls("SELECT 1", None, orig)  # type: ignore[arg-type]


def _raised_through_sqlalchemy(error: BaseException) -> BaseException:
    """``error`` as it leaves SQLAlchemy's pool unwrapped, like asyncpg's network errors."""

    def connect() -> sqlite3.Connection:
        raise error

    engine = create_engine("sqlite://", creator=connect)
    try:
        engine.connect()
    except BaseException as raised:
        return raised
    finally:
        engine.dispose()
    raise AssertionError("the pool did not raise")


CASES: list[tuple[str, BaseException, FailureKind | None]] = [
    # PostgreSQL via psycopg (its errors carry the SQLSTATE).
    (
        "psycopg starting up",
        _wrapped(psycopg.errors.CannotConnectNow("starting up")),
        "unavailable",
    ),
    ("psycopg shutting down", _wrapped(psycopg.errors.AdminShutdown("shutting")), "unavailable"),
    ("psycopg crash", _wrapped(psycopg.errors.CrashShutdown("crash")), "unavailable"),
    ("psycopg too many", _wrapped(psycopg.errors.TooManyConnections("too many")), "unavailable"),
    ("psycopg idle session", _wrapped(psycopg.errors.IdleSessionTimeout("idle")), "unavailable"),
    ("psycopg 08006", _wrapped(psycopg.errors.ConnectionFailure("failure")), "unavailable"),
    (
        "psycopg libpq",
        _wrapped(psycopg.OperationalError("server closed the connection")),
        "unavailable",
    ),
    ("psycopg lock", _wrapped(psycopg.errors.LockNotAvailable("lock")), "contention"),
    ("psycopg timeout", _wrapped(psycopg.errors.QueryCanceled("statement timeout")), "contention"),
    ("psycopg serialization", _wrapped(psycopg.errors.SerializationFailure("s")), "contention"),
    ("psycopg deadlock", _wrapped(psycopg.errors.DeadlockDetected("d")), "contention"),
    ("psycopg disk full", _wrapped(psycopg.errors.DiskFull("full")), "other"),
    ("psycopg no table", _wrapped(psycopg.errors.UndefinedTable("t")), "other"),
    ("psycopg no column", _wrapped(psycopg.errors.UndefinedColumn("c")), "other"),
    ("psycopg db dropped", _wrapped(psycopg.errors.DatabaseDropped("d")), "other"),
    (
        "psycopg unique",
        _wrapped(psycopg.errors.UniqueViolation("u"), sa_exc.IntegrityError),
        "conflict",
    ),
    # PostgreSQL via asyncpg (SQLAlchemy's adapter copies its SQLSTATE; the raw class has it).
    (
        "asyncpg starting up",
        _wrapped(asyncpg.exceptions.CannotConnectNowError("up")),
        "unavailable",
    ),
    (
        "asyncpg shutting down",
        _wrapped(asyncpg.exceptions.AdminShutdownError("down")),
        "unavailable",
    ),
    ("asyncpg crash", _wrapped(asyncpg.exceptions.CrashShutdownError("crash")), "unavailable"),
    (
        "asyncpg gone",
        _wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("gone")),
        "unavailable",
    ),
    ("asyncpg deadlock", _wrapped(asyncpg.exceptions.DeadlockDetectedError("d")), "contention"),
    ("asyncpg no table", _wrapped(asyncpg.exceptions.UndefinedTableError("t")), "other"),
    ("asyncpg bad password", _wrapped(asyncpg.exceptions.InvalidPasswordError("p")), "other"),
    # asyncpg's connect lets network errors out unwrapped.
    (
        "refused",
        _raised_through_sqlalchemy(ConnectionRefusedError(errno.ECONNREFUSED, "x")),
        "unavailable",
    ),
    (
        "reset",
        _raised_through_sqlalchemy(ConnectionResetError(errno.ECONNRESET, "x")),
        "unavailable",
    ),
    ("connect timeout", _raised_through_sqlalchemy(TimeoutError()), "unavailable"),
    (
        "all addresses",
        _raised_through_sqlalchemy(OSError("Multiple exceptions: ...")),
        "unavailable",
    ),
    ("unreachable", _raised_through_sqlalchemy(OSError(errno.EHOSTUNREACH, "x")), "unavailable"),
    (
        "dns again",
        _raised_through_sqlalchemy(socket.gaierror(socket.EAI_AGAIN, "x")),
        "unavailable",
    ),
    ("dns unknown", _raised_through_sqlalchemy(socket.gaierror(socket.EAI_NONAME, "x")), None),
    ("file missing", _raised_through_sqlalchemy(FileNotFoundError(errno.ENOENT, "x")), None),
    # The endpoint's own network call is not the database's failure.
    ("refused outside", ConnectionRefusedError(errno.ECONNREFUSED, "x"), None),
    # MySQL/MariaDB via pymysql and aiomysql (the code is the first argument).
    ("mysql refused", _wrapped(pymysql.err.OperationalError(2003, "Can't connect")), "unavailable"),
    ("mysql gone", _wrapped(pymysql.err.OperationalError(2006, "gone away")), "unavailable"),
    ("mysql lost", _wrapped(pymysql.err.OperationalError(2013, "Lost connection")), "unavailable"),
    ("mysql too many", _wrapped(pymysql.err.OperationalError(1040, "Too many")), "unavailable"),
    ("mysql shutdown", _wrapped(pymysql.err.OperationalError(1053, "shutdown")), "unavailable"),
    ("mysql killed", _wrapped(pymysql.err.OperationalError(1927, "killed")), "unavailable"),
    ("mysql lock wait", _wrapped(pymysql.err.OperationalError(1205, "Lock wait")), "contention"),
    ("mysql deadlock", _wrapped(pymysql.err.OperationalError(1213, "Deadlock")), "contention"),
    (
        "mysql timeout",
        _wrapped(pymysql.err.OperationalError(1969, "max_statement_time")),
        "contention",
    ),
    ("mysql no table", _wrapped(pymysql.err.ProgrammingError(1146, "doesn't exist")), "other"),
    ("mysql no db", _wrapped(pymysql.err.OperationalError(1049, "Unknown database")), "other"),
    ("mysql access", _wrapped(pymysql.err.OperationalError(1045, "Access denied")), "other"),
    (
        "mysql dup",
        _wrapped(pymysql.err.IntegrityError(1062, "Duplicate"), sa_exc.IntegrityError),
        "conflict",
    ),
    # SQLite (the result-code-free messages of Python 3.10; real codes in the database tests).
    ("sqlite locked", _wrapped(sqlite3.OperationalError("database is locked")), "contention"),
    (
        "sqlite table locked",
        _wrapped(sqlite3.OperationalError("database table is locked")),
        "contention",
    ),
    (
        "sqlite cannot open",
        _wrapped(sqlite3.OperationalError("unable to open database file")),
        "unavailable",
    ),
    ("sqlite no table", _wrapped(sqlite3.OperationalError("no such table: notes")), "other"),
    (
        "sqlite nested",
        _wrapped(sqlite3.OperationalError("cannot start a transaction within a transaction")),
        "other",
    ),
    # SQLAlchemy's own.
    ("pool timeout", sa_exc.TimeoutError("QueuePool limit reached"), "unavailable"),
    ("disconnect", sa_exc.DisconnectionError("gone"), "unavailable"),
    (
        "invalidated",
        sa_exc.DBAPIError("SELECT 1", None, Exception("x"), connection_invalidated=True),
        "unavailable",
    ),  # type: ignore[arg-type]
    ("unknown driver error", _wrapped(Exception("x"), sa_exc.OperationalError), "other"),
    ("orm misuse", sa_exc.InvalidRequestError("x"), "other"),
    ("not a database error", ValueError("x"), None),
]


@pytest.mark.parametrize(("error", "kind"), [pytest.param(e, k, id=name) for name, e, k in CASES])
def test_each_failure_has_its_kind(error: BaseException, kind: FailureKind | None) -> None:
    assert classify(error) == kind
    assert is_transient(error) is (kind in ("unavailable", "contention"))


RETRYABLE = {"psycopg serialization", "psycopg deadlock", "asyncpg deadlock", "mysql deadlock"}


@pytest.mark.parametrize(("name", "error"), [(name, e) for name, e, _ in CASES])
def test_serialization_failures_and_deadlocks_are_retryable(
    name: str, error: BaseException
) -> None:
    assert is_retryable(error) is (name in RETRYABLE)
