"""Isolation levels and statement timeouts of a unit of work.

Both are per-transaction settings, so they are safe behind a transaction-pooling PgBouncer:

* the isolation level is SQLAlchemy's ``isolation_level`` execution option on the unit's
  engine copy. PostgreSQL's drivers send it with the BEGIN (``BEGIN ISOLATION LEVEL ...``);
  MySQL's drivers set it on the session before the transaction and SQLAlchemy puts the
  default back when the connection returns to the pool. SQLite runs every transaction
  serializable, so a level asked of it changes nothing.
* the statement timeout is an execution option read by a hook of the engine: on PostgreSQL
  ``SET LOCAL statement_timeout`` at the start of each transaction (it ends with the
  transaction); on MariaDB each statement is sent as ``SET STATEMENT max_statement_time=...
  FOR ...`` (nothing to undo afterwards); on MySQL a ``MAX_EXECUTION_TIME`` hint is added to
  each SELECT (MySQL limits nothing else). SQLite has no statement timeout: it is ignored there.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from sqlalchemy import Connection, Engine, event

from ._errors import ConfigurationError

IsolationLevel = Literal["READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]
"""The transaction isolation levels a unit of work can ask for."""

ISOLATION_LEVELS: tuple[IsolationLevel, ...] = get_args(IsolationLevel)

STATEMENT_TIMEOUT_OPTION = "sessionscope_statement_timeout"
"""Execution option: seconds each statement of the transaction may run."""

# Statements MariaDB runs under SET STATEMENT ... FOR (not transaction control, not SET).
_LIMITED = re.compile(r"\s*(?:SELECT|INSERT|UPDATE|DELETE|REPLACE|WITH)\b", re.IGNORECASE)
_SELECT = re.compile(r"\s*SELECT\b", re.IGNORECASE)


def check_isolation(level: object) -> IsolationLevel | None:
    """``level`` if it is ``None`` or an `IsolationLevel`; else a `ConfigurationError`."""
    if level is None:
        return None
    if level not in ISOLATION_LEVELS:
        raise ConfigurationError(
            f"unknown isolation level {level!r}; expected one of "
            f"{', '.join(map(repr, ISOLATION_LEVELS))}"
        )
    return level


def check_statement_timeout(seconds: object) -> float | None:
    """``seconds`` if it is ``None`` or a positive number; else a `ConfigurationError`."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise ConfigurationError(
            f"statement_timeout must be a positive number of seconds (or None), got {seconds!r}"
        )
    return float(seconds)


def check_retries(retries: object) -> int:
    """``retries`` if it is a whole number >= 0; else a `ConfigurationError`."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"retries must be a whole number >= 0, got {retries!r}")
    return retries


def tuning_options(
    backend: str, isolation: IsolationLevel | None, statement_timeout: float | None
) -> dict[str, Any]:
    """The execution options that give a unit ``isolation`` and ``statement_timeout``."""
    if backend == "sqlite":
        # Every SQLite transaction is serializable; SQLite has no statement timeout.
        return {}
    options: dict[str, Any] = {}
    if isolation is not None:
        options["isolation_level"] = isolation
    if statement_timeout is not None:
        options[STATEMENT_TIMEOUT_OPTION] = statement_timeout
    return options


def install_statement_timeout(engine: Engine, backend: str) -> None:
    """Make ``engine`` apply the `STATEMENT_TIMEOUT_OPTION` of its connections."""
    if backend == "postgresql":
        event.listen(engine, "begin", _set_local_statement_timeout)
    elif backend in ("mysql", "mariadb"):
        event.listen(engine, "before_cursor_execute", _limit_mysql_statement, retval=True)


def _set_local_statement_timeout(connection: Connection) -> None:
    seconds = connection.get_execution_options().get(STATEMENT_TIMEOUT_OPTION)
    if seconds:
        connection.exec_driver_sql(set_local_statement_timeout(seconds))


def set_local_statement_timeout(seconds: float) -> str:
    """The PostgreSQL statement that limits the current transaction's statements."""
    # SET LOCAL ends with the transaction: nothing leaks to the next user of the connection,
    # with or without PgBouncer in between.
    return f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}"


def _limit_mysql_statement(
    connection: Connection,
    _cursor: Any,
    statement: str,
    parameters: Any,
    _context: Any,
    executemany: bool,
) -> tuple[str, Any]:
    seconds = connection.get_execution_options().get(STATEMENT_TIMEOUT_OPTION)
    if not seconds or executemany:
        # executemany: the driver rewrites INSERT ... VALUES into one statement by pattern.
        return statement, parameters
    if connection.dialect.is_mariadb:  # type: ignore[attr-defined]
        if _LIMITED.match(statement):
            statement = f"SET STATEMENT max_statement_time={seconds:.3f} FOR {statement}"
    else:
        match = _SELECT.match(statement)
        if match:
            hint = f" /*+ MAX_EXECUTION_TIME({max(1, round(seconds * 1000))}) */"
            statement = statement[: match.end()] + hint + statement[match.end() :]
    return statement, parameters
