"""The first operation of a unit of work runs again when its pooled connection was dead.

A pooled connection that the server closed while it sat in the pool (a killed backend, a
restart, an idle timeout) fails the first statement sent on it. The idle ping
(``ping_after_idle``) catches such connections only when they sat idle long enough; under
load none does, and pinging every checkout costs a round trip each. But when the failure
comes during the unit's first database operation, nothing of the unit can have taken effect
and nothing of it has reached the app: the operation can run again on a fresh connection, and
the request does not fail.

The session's first operation (an ORM or Core statement through ``execute``, ``scalar``,
``scalars``, ``get``; or a flush) is run by `run_first_use`. On an error that SQLAlchemy
classified as a disconnect (the driver's own signal, ``is_disconnect``: the error's
``connection_invalidated``) of a statement, it rolls the session back (which drops the dead
connection and, with it, SQLAlchemy's view of the pool: connections older than the failure
are replaced at their next checkout), puts back the objects that were waiting to be inserted
as they were before the operation, and runs the operation again, at most
``reconnect_retries`` times. A failed connect is not retried here: a database that is down
would only make the request wait longer to fail.

Why a disconnect of any statement of the first operation, not only of its very first
statement, may be retried:

* the session held no connection before the operation (`arm` applies only to sessions bound
  to an engine, and ``after_begin`` disarms a session that took one otherwise): every
  statement of the operation ran on a connection checked out for it, inside the transaction
  the operation began;
* the operation may send several statements (the driver's BEGIN, a flush's INSERTs into two
  tables, an eager loader's second SELECT); a disconnect during any of them ends that
  transaction without COMMIT, and the server rolls back what the earlier ones did. Nothing
  of the unit was committed;
* the operation has not returned: no row, no generated key, no count has reached the app, so
  nothing the app did can depend on what the lost transaction saw. Objects a failed flush
  had inserted (their keys and fetched defaults set from the lost rows) are restored to what
  they were before the operation, so the second run inserts them afresh.

What runs twice is what runs inside the operation: the statements, and the app's own ORM event
hooks (``before_flush``, ``after_insert``) that a rolled-back flush would have run anyway;
side effects belong after the commit (`after_commit`). Units in autocommit (read-only units
on PostgreSQL) commit each statement, but their sessions refuse flushes and DML constructs:
their multi-statement operations only read; a ``text()`` write sent as a read is one
statement, retried as before this rule. Once an operation has returned, nothing runs again:
a later disconnect loses work the app may have acted on, and the request answers 503.

No engine event is needed for this: a listener on every statement (``before_cursor_execute``)
would make SQLAlchemy dispatch events on every statement of every connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state

logger = logging.getLogger("sessionscope")

RECONNECT_KEY = "sessionscope.reconnect_retries"
"""``session.info`` key: the retries of the session's first operation, while it has not run."""

_T = TypeVar("_T")


def is_retryable_disconnect(error: BaseException) -> bool:
    """Whether ``error`` is a statement's failure because its connection was closed (not a
    failed connect, which has no statement)."""
    return (
        isinstance(error, sa_exc.DBAPIError)
        and error.connection_invalidated
        and error.statement is not None
    )


def arm(session: Session, retries: int) -> None:
    """Let the first database operation of ``session`` (bound to an engine) run again up to
    ``retries`` times. SQLite has no disconnects: its sessions skip the wrapping."""
    bind = session.bind
    if retries and bind is not None and bind.dialect.name != "sqlite":
        session.info[RECONNECT_KEY] = retries


def run_first_use(session: Session, operation: Callable[[], _T]) -> _T:
    """Run ``operation``, the first database operation of ``session``; run it again on a fresh
    connection when a statement of it met a connection the server had closed."""
    retries: int = session.info.pop(RECONNECT_KEY, 0)
    if session.identity_map or session.deleted:
        # Objects are attached whose unflushed changes a rollback would expire.
        return operation()
    attempt = 0
    while True:
        # The objects waiting to be inserted, with their attributes before the operation.
        pending = [(obj, dict(instance_state(obj).dict)) for obj in session.new]
        try:
            return operation()
        except sa_exc.DBAPIError as error:
            if attempt >= retries or not is_retryable_disconnect(error):
                raise
            attempt += 1
            logger.info(
                "the pooled connection of a unit of work's first operation was closed by the "
                "database (%s); running it again on a fresh connection (%d of %d)",
                type(error.orig).__name__,
                attempt,
                retries,
            )
            # Drops the dead connection; objects waiting to be inserted were expunged by the
            # failed flush or by this rollback: they are added back as they were.
            session.rollback()
            for obj, before in pending:
                _restore(instance_state(obj).dict, before)
            session.add_all([obj for obj, _ in pending])


def _restore(attributes: dict[str, Any], before: dict[str, Any]) -> None:
    # A flush that failed after some INSERTs ran set keys and fetched defaults from rows the
    # lost transaction took with it.
    for key in attributes.keys() - before.keys():
        del attributes[key]
    attributes.update(before)


def connection_taken(session: Session, _transaction: Any, _connection: Any) -> None:
    """The ``after_begin`` hook: a connection taken outside `run_first_use` (with
    ``session.connection()``, say) may have run statements already: no operation of the
    session runs again."""
    session.info.pop(RECONNECT_KEY, None)
