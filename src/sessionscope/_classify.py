"""What kind of failure a database error is: pure functions of the exception, no I/O.

Every supported driver is recognised by the exception's type and its SQLSTATE (PostgreSQL:
psycopg, asyncpg) or error code (MySQL/MariaDB: pymysql, aiomysql; SQLite: pysqlite,
aiosqlite), never by the message alone. The kinds:

* ``"unavailable"``: the database cannot be reached or is not serving (refused or lost
  connection, server shutting down or starting up, too many connections, pool timeout, a
  SQLite file that cannot be opened);
* ``"contention"``: the database is busy with other work (lock or busy timeout, statement
  timeout, serialization failure, deadlock);
* ``"conflict"``: the change violates a constraint;
* ``"other"``: anything else: a bug in the app (a missing table, bad SQL) or a problem that
  retrying does not cure (disk full, unknown database, failed authentication).

The first two are transient: retrying later can succeed. docs/errors.md has the table.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sqlite3
from typing import Literal

from sqlalchemy import exc as sa_exc

FailureKind = Literal["unavailable", "contention", "conflict", "other"]
TRANSIENT_KINDS: frozenset[FailureKind] = frozenset({"unavailable", "contention"})

# PostgreSQL SQLSTATEs (Appendix A of its manual). Class 08 (connection exception) is
# unavailable as a whole: PgBouncer, too, answers 08P01 when it cannot reach the server.
_PG_UNAVAILABLE = frozenset(
    {
        "57P01",  # admin_shutdown: server shutting down, or pg_terminate_backend()
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up, in recovery, not yet accepting connections
        "57P05",  # idle_session_timeout: the server closed an idle session
        "25P03",  # idle_in_transaction_session_timeout: the server closed the connection
        "53000",  # insufficient_resources
        "53200",  # out_of_memory
        "53300",  # too_many_connections
    }
)
_PG_CONTENTION = frozenset(
    {
        "55P03",  # lock_not_available: lock_timeout, NOWAIT
        "57014",  # query_canceled: statement_timeout
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
    }
)

# MySQL/MariaDB error codes: client (2xxx) and server (1xxx, 3xxx, 4xxx).
_MYSQL_UNAVAILABLE = frozenset(
    {
        2002,  # CR_CONNECTION_ERROR: cannot connect through the socket
        2003,  # CR_CONN_HOST_ERROR: cannot connect to the server (refused, unreachable)
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST: lost connection during query
        2055,  # CR_SERVER_LOST_EXTENDED
        1040,  # ER_CON_COUNT_ERROR: too many connections
        1041,  # ER_OUT_OF_RESOURCES
        1053,  # ER_SERVER_SHUTDOWN: server shutdown in progress
        1152,  # ER_ABORTING_CONNECTION
        1158,  # ER_NET_READ_ERROR
        1159,  # ER_NET_READ_INTERRUPTED
        1160,  # ER_NET_ERROR_ON_WRITE
        1161,  # ER_NET_WRITE_INTERRUPTED
        1184,  # ER_NEW_ABORTING_CONNECTION
        1203,  # ER_TOO_MANY_USER_CONNECTIONS
        1226,  # ER_USER_LIMIT_REACHED: the account's max_user_connections
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT: the server closed an idle connection
    }
)
_MYSQL_CONTENTION = frozenset(
    {
        1205,  # ER_LOCK_WAIT_TIMEOUT
        1213,  # ER_LOCK_DEADLOCK
        1317,  # ER_QUERY_INTERRUPTED
        1637,  # ER_TOO_MANY_CONCURRENT_TRXS
        1969,  # ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
        3024,  # ER_QUERY_TIMEOUT (MySQL max_execution_time)
        3572,  # ER_LOCK_NOWAIT
    }
)

# SQLite primary result codes (an extended code keeps its primary one in the low byte).
_SQLITE_BUSY = 5  # another connection holds the lock past busy_timeout: "database is locked"
_SQLITE_LOCKED = 6  # a conflict inside one connection or shared cache: "database table is locked"
_SQLITE_CANTOPEN = 14  # the file cannot be opened (a volume not mounted yet): SQLite's "refused"
# Python 3.10's sqlite3 exceptions carry no result code: their messages are SQLite's fixed
# English texts for these codes (sqlite3ErrStr; "database schema is locked: main" is
# SQLITE_LOCKED_SHAREDCACHE's).
_SQLITE_CODE_BY_MESSAGE = (
    ("database is locked", _SQLITE_BUSY),
    ("database table is locked", _SQLITE_LOCKED),
    ("database schema is locked", _SQLITE_LOCKED),
    ("unable to open database file", _SQLITE_CANTOPEN),
)

# Network failures raised by a driver without being wrapped (asyncpg's connect): errno of a
# plain OSError. ``None``: asyncio's "Multiple exceptions: ..." when every address failed.
_NETWORK_ERRNOS = frozenset(
    {
        None,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
    }
)
_DATABASE_PACKAGES = frozenset(
    {"sqlalchemy", "asyncpg", "psycopg", "pymysql", "aiomysql", "aiosqlite", "sqlite3"}
)


def classify(error: BaseException) -> FailureKind | None:
    """Return the kind of database failure ``error`` is, or ``None`` for a non-database error."""
    if isinstance(error, sa_exc.IntegrityError):
        return "conflict"
    if isinstance(error, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return "unavailable"  # no pooled connection in time; a connection found dead
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return "unavailable"  # SQLAlchemy recognised a disconnect and dropped the connection
        return _classify_driver_error(error.orig)
    if isinstance(error, sa_exc.SQLAlchemyError):
        return "other"
    if _package_of(type(error)) in ("asyncpg", "psycopg") and isinstance(error, Exception):
        # Raised by the driver itself, unwrapped: a statement sent on the driver connection
        # (the fast path).
        return _classify_driver_error(error)
    if _is_network_error(error) and _raised_through_database_code(error):
        return "unavailable"
    return None


def is_transient(error: BaseException) -> bool:
    """Whether retrying later can succeed: the database is unavailable or busy."""
    return classify(error) in TRANSIENT_KINDS


def cut_during_commit(error: BaseException) -> bool:
    """Whether ``error`` is a lost connection raised by the DBAPI connection's ``commit()``:
    the COMMIT may have reached the server and been applied before the connection broke.

    A failure before the COMMIT was sent (a flush, the checkout of a connection) and every
    error the server answered (a serialization failure, a constraint checked at COMMIT) are
    known outcomes: nothing was written.
    """
    if classify(error) != "unavailable" or isinstance(error, sa_exc.TimeoutError):
        return False
    traceback = error.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if (
            code.co_name in _COMMIT_FRAMES
            and _package_of_module(traceback.tb_frame.f_globals.get("__name__", "")) == "sqlalchemy"
        ):
            return True
        traceback = traceback.tb_next
    return False


# SQLAlchemy's Connection sends the COMMIT of a transaction (and of a prepared two-phase
# one) through these: a frame of one of them in the traceback places the failure there.
_COMMIT_FRAMES = frozenset({"_commit_impl", "_commit_twophase_impl"})


def _package_of_module(module: object) -> str:
    return module.partition(".")[0] if isinstance(module, str) else ""


def _classify_driver_error(orig: BaseException | None) -> FailureKind:
    if orig is None:
        return "other"
    if isinstance(orig, sqlite3.Error):
        code = _sqlite_primary_code(orig)
        if code == _SQLITE_CANTOPEN:
            return "unavailable"
        return "contention" if code in (_SQLITE_BUSY, _SQLITE_LOCKED) else "other"
    code = _mysql_code(orig)
    if code is not None:
        if code in _MYSQL_UNAVAILABLE:
            return "unavailable"
        return "contention" if code in _MYSQL_CONTENTION else "other"
    sqlstate = _sqlstate(orig)
    if sqlstate is not None:
        if sqlstate.startswith("08") or sqlstate in _PG_UNAVAILABLE:
            return "unavailable"
        if sqlstate in _PG_CONTENTION:
            return "contention"
        return "conflict" if sqlstate.startswith("23") else "other"
    if _package_of(type(orig)) == "psycopg" and _is_psycopg_operational(orig):
        # libpq reports connection failures (refused, lost, a FATAL at login) without a
        # SQLSTATE; every error the server sent has one.
        return "unavailable"
    return "other"


def _sqlite_primary_code(orig: sqlite3.Error) -> int | None:
    code = getattr(orig, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return code & 0xFF
    message = str(orig)
    return next((code for text, code in _SQLITE_CODE_BY_MESSAGE if message.startswith(text)), None)


def _mysql_code(orig: BaseException | None) -> int | None:
    # pymysql and aiomysql (which raises pymysql's classes) put the code first in args.
    if orig is None or _package_of(type(orig)) not in ("pymysql", "aiomysql"):
        return None
    code = orig.args[0] if orig.args else None
    return code if isinstance(code, int) else None


def _sqlstate(orig: BaseException | None) -> str | None:
    # psycopg's errors and SQLAlchemy's asyncpg adapter errors carry ``sqlstate``.
    if orig is None or _package_of(type(orig)) not in ("psycopg", "sqlalchemy", "asyncpg"):
        return None
    sqlstate = getattr(orig, "sqlstate", None)
    return sqlstate if isinstance(sqlstate, str) and len(sqlstate) == 5 else None


def _is_psycopg_operational(orig: BaseException) -> bool:
    return any(cls.__name__ == "OperationalError" for cls in type(orig).__mro__)


def _is_network_error(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    if isinstance(error, socket.gaierror):
        return error.errno == socket.EAI_AGAIN  # a name server that did not answer in time
    return type(error) is OSError and error.errno in _NETWORK_ERRNOS


def _raised_through_database_code(error: BaseException) -> bool:
    # asyncpg's connect lets OSError out unwrapped, through SQLAlchemy's pool: such an error
    # is the database's only when its traceback passes through database code, not when the
    # endpoint's own HTTP call or socket failed.
    traceback = error.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.partition(".")[0] in _DATABASE_PACKAGES:
            return True
        traceback = traceback.tb_next
    return False


def _package_of(cls: type) -> str:
    return cls.__module__.partition(".")[0]
