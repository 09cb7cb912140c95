"""Driver settings for PostgreSQL behind PgBouncer in transaction pooling mode.

In transaction mode each transaction may run on another server connection, so nothing may
outlive a transaction on the server: no named prepared statement (psycopg prepares a statement
after 5 executions; asyncpg names and caches every statement), no session ``SET``. With
``pgbouncer=True``:

* psycopg: ``prepare_threshold=None``, never a server-side prepared statement;
* asyncpg: no statement cache (``statement_cache_size=0`` for asyncpg,
  ``prepared_statement_cache_size=0`` for SQLAlchemy's adapter) and *unnamed* statements
  (``prepared_statement_name_func`` returning ``""``): an unnamed statement is replaced by the
  next one on the same server connection, so unlike unique names it leaves nothing behind
  on PgBouncer's server connections;
* read-only units run in a read-only transaction instead of autocommit: outside a
  transaction asyncpg prepares and executes in two round trips, which PgBouncer may send to
  two different server connections.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL


def unnamed_statement() -> str:
    """asyncpg's name for each prepared statement: the unnamed one."""
    return ""


def pgbouncer_connect_args(url: URL) -> dict[str, Any]:
    """The ``connect_args`` that keep ``url``'s driver working behind PgBouncer."""
    driver = url.get_driver_name()
    if driver == "asyncpg":
        return {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": unnamed_statement,
        }
    if driver in ("psycopg", "psycopg_async"):
        return {"prepare_threshold": None}
    # psycopg2 and pg8000 prepare nothing on the server.
    return {}
