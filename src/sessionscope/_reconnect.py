"""The first statement of a unit of work runs again when its pooled connection was dead.

A pooled connection that the server closed while it sat in the pool (a killed backend, a
restart, an idle timeout) fails the first statement sent on it. The idle ping
(``ping_after_idle``) catches such connections only when they sat idle long enough; under
load none does, and pinging every checkout costs a round trip each. But when that failing
statement is the first one of the unit of work, nothing of the unit has reached the database:
it can run again on a fresh connection, and the request does not fail.

Two parts make that safe:

* on the engine, the first statement sent on each checked-out connection is marked, and a
  disconnect error of exactly that statement is marked `before_any_statement` (the driver's
  own disconnect signal, SQLAlchemy's ``is_disconnect``). A disconnect of any later statement
  is not: the transaction's earlier work is lost, and its results may have been acted on;
* on the session, the unit's first database operation (an ORM statement, or a flush) is run by
  `run_first_use`: on such an error it rolls the session back (which drops the dead connection
  and, with it, SQLAlchemy's view of the pool: connections older than the failure are replaced
  at their next checkout), puts back the objects that were waiting to be inserted, and runs the
  operation again, at most ``reconnect_retries`` times.

Only a session's first operation, with nothing loaded yet, takes part; once the session has
taken a connection otherwise (``session.connection()``), nothing of it runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

logger = logging.getLogger("sessionscope")

RECONNECT_KEY = "sessionscope.reconnect_retries"
"""``session.info`` key: the retries of the session's first operation, while it has not run."""

_FRESH = "sessionscope_fresh"  # connection info: checked out, no statement sent on it yet
_FIRST = "_sessionscope_first_statement"  # on an execution context and on its error

_T = TypeVar("_T")


def install_first_statement_marks(engine: Engine) -> None:
    """Mark the disconnect errors of the first statement sent on each checkout of ``engine``."""

    @event.listens_for(engine, "checkout")
    def _on_checkout(
        _dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        record.info[_FRESH] = True

    @event.listens_for(engine, "before_cursor_execute")
    def _on_statement(
        connection: Any,
        _cursor: Any,
        _statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        if context is not None and connection.info.pop(_FRESH, False):
            setattr(context, _FIRST, True)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        error = context.sqlalchemy_exception
        if (
            error is not None
            and context.is_disconnect
            and getattr(context.execution_context, _FIRST, False)
        ):
            setattr(error, _FIRST, True)


def before_any_statement(error: BaseException) -> bool:
    """Whether ``error`` is a disconnect of the first statement sent on its connection."""
    return isinstance(error, sa_exc.DBAPIError) and getattr(error, _FIRST, False)


def arm(session: Session, retries: int) -> None:
    """Let the first database operation of ``session`` (bound to an engine) run again up to
    ``retries`` times. SQLite has no disconnects: its sessions skip the wrapping."""
    bind = session.bind
    if retries and bind is not None and bind.dialect.name != "sqlite":
        session.info[RECONNECT_KEY] = retries


def run_first_use(session: Session, operation: Callable[[], _T]) -> _T:
    """Run ``operation``, the first database operation of ``session``; run it again on a fresh
    connection when its first statement met a connection the server had closed."""
    retries: int = session.info.pop(RECONNECT_KEY, 0)
    if session.identity_map or session.deleted:
        # Objects are attached whose unflushed changes a rollback would expire.
        return operation()
    attempt = 0
    while True:
        pending = list(session.new)
        try:
            return operation()
        except sa_exc.DBAPIError as error:
            if attempt >= retries or not before_any_statement(error):
                raise
            attempt += 1
            logger.info(
                "the pooled connection of a unit of work's first statement was closed by the "
                "database (%s); running it again on a fresh connection (%d of %d)",
                type(error.orig).__name__,
                attempt,
                retries,
            )
            # Drops the dead connection; objects waiting to be inserted were expunged by the
            # failed flush or by this rollback: they are added back as they were.
            session.rollback()
            session.add_all(pending)


def first_statement(state: ORMExecuteState) -> Any:
    """The ``do_orm_execute`` hook of sessions whose first operation may run again."""
    session = state.session
    if RECONNECT_KEY not in session.info:
        return None
    return run_first_use(session, state.invoke_statement)


def connection_taken(session: Session, _transaction: Any, _connection: Any) -> None:
    """The ``after_begin`` hook: a connection taken outside `run_first_use` (with
    ``session.connection()``, say) may have run statements already: no operation of the
    session runs again."""
    session.info.pop(RECONNECT_KEY, None)
