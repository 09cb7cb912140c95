"""Test bindings: one connection, one outer transaction, rolled back at the end.

While a `Database` is bound, every session it creates (request sessions and
``db.transaction()`` blocks alike) joins the bound connection with
``join_transaction_mode="create_savepoint"``: the app's ``commit()`` releases a SAVEPOINT and
its ``rollback()`` rolls back to one, while the outer transaction stays open until the
binding rolls it back. Nothing the test or the app wrote survives it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import anyio
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from ._config import DatabaseConfig
from ._database import Database
from ._engines import is_sqlite_memory
from ._errors import SessionScopeError
from ._runtime import Flavour, UnitNeeds, binding_of, install_binding, remove_binding
from ._slots import ConnectionSlots


class _Binding:
    """Where units of work run while a test binds a database: on the test's connection.

    The same interface as the runtime of an app (`bind_for`), answered with the connection
    that holds the test's outer transaction, of one flavour only.
    """

    flavour: Flavour
    _connection: Any

    def __init__(self, config: DatabaseConfig) -> None:
        self._config = config

    @property
    def config(self) -> DatabaseConfig:
        return self._config

    @property
    def shares_one_connection(self) -> bool:
        return True

    @property
    def end_limiter(self) -> anyio.CapacityLimiter | None:
        return None

    def slots(self, flavour: Flavour) -> ConnectionSlots | None:
        return None

    def bind_for(self, unit: UnitNeeds) -> Connection:
        self._refuse_other("sync")
        connection: Connection = self._connection
        return connection

    def async_bind_for(self, unit: UnitNeeds) -> AsyncConnection:
        self._refuse_other("async")
        connection: AsyncConnection = self._connection
        return connection

    def _refuse_other(self, flavour: Literal["sync", "async"]) -> None:
        if flavour == self.flavour:
            return
        # Falling back to the engine would let this session escape the test's transaction.
        fixture = "sessionscope_async_client" if flavour == "async" else "sessionscope_client"
        binder = "async_rollback_after(db)" if flavour == "async" else "rollback_after(db)"
        raise SessionScopeError(
            f"this database is bound to a test transaction on a {self.flavour} connection, and "
            f"{'an' if flavour == 'async' else 'a'} {flavour} session here would write outside "
            "the test's rollback. Bind the "
            f"{flavour} flavour instead: {binder} (pytest: the `{fixture}` fixture). An app "
            "that uses both flavours cannot share one rolled-back transaction between them: "
            "test each flavour's routes with its own fixtures, and a request sequence that "
            "crosses flavours with sessionscope.testing.app_client(app) on a test database "
            "(docs/testing.md, 'Apps that mix flavours')."
        )


class BoundTransaction(_Binding):
    """A sync binding: the connection that holds the test's outer transaction.

    `session` gives the test its own sessions on that connection, so the test sees what the
    app wrote (and the app what the test wrote) before anything is rolled back.
    """

    flavour: Flavour = "sync"

    def __init__(self, connection: Connection, config: DatabaseConfig) -> None:
        super().__init__(config)
        self.connection = connection
        self._connection = connection
        self._sessions: list[Session] = []

    def session(self, **options: Any) -> Session:
        """A new Session inside the test's transaction; closed when the binding ends.

        Its ``commit()`` and ``rollback()`` work on SAVEPOINTs like the app's. ``options``
        go to `Session` (default ``expire_on_commit=False``, like the app's sessions).
        """
        options.setdefault("expire_on_commit", False)
        session = Session(bind=self.connection, join_transaction_mode="create_savepoint", **options)
        self._sessions.append(session)
        return session

    def _close_sessions(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


class AsyncBoundTransaction(_Binding):
    """An async binding: the AsyncConnection that holds the test's outer transaction."""

    flavour: Flavour = "async"

    def __init__(self, connection: AsyncConnection, config: DatabaseConfig) -> None:
        super().__init__(config)
        self.connection = connection
        self._connection = connection
        self._sessions: list[AsyncSession] = []

    def session(self, **options: Any) -> AsyncSession:
        """A new AsyncSession inside the test's transaction; closed when the binding ends."""
        options.setdefault("expire_on_commit", False)
        session = AsyncSession(
            bind=self.connection, join_transaction_mode="create_savepoint", **options
        )
        self._sessions.append(session)
        return session

    async def _close_sessions(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            await session.close()


def _refuse_nesting(db: Database) -> None:
    if binding_of(db) is not None:
        raise SessionScopeError(
            f"{db!r} is already bound to a test transaction. One test binds a database once, "
            "in one flavour: a sync test of an async app checks its data through the API (or "
            "becomes an async test with the async session and client)."
        )


@contextmanager
def rollback_after(db: Database) -> Iterator[BoundTransaction]:
    """Bind ``db``'s sync sessions to one connection inside a transaction rolled back at exit.

    The rollback runs however the block ends, a failing test included. Async sessions of
    ``db`` refuse to open meanwhile: they would write outside the transaction.
    """
    _refuse_nesting(db)
    connection = db.sync_engine.connect()
    try:
        outer = connection.begin()
        bound = BoundTransaction(connection, db.config)
        install_binding(db, bound)
        try:
            yield bound
        finally:
            remove_binding(db)
            try:
                bound._close_sessions()
            finally:
                if outer.is_active:
                    outer.rollback()
    finally:
        connection.close()


@asynccontextmanager
async def async_rollback_after(db: Database) -> AsyncIterator[AsyncBoundTransaction]:
    """`rollback_after` for async sessions: binds ``db``'s AsyncSessions to one AsyncConnection.

    At exit the async engine's pool is also disposed of (except for SQLite ``:memory:``, whose
    only connection is the database): async drivers tie connections to the event loop that
    opened them, and the next test may run on another loop.
    """
    _refuse_nesting(db)
    engine = db.async_engine
    connection = await engine.connect()
    try:
        outer = await connection.begin()
        bound = AsyncBoundTransaction(connection, db.config)
        install_binding(db, bound)
        try:
            yield bound
        finally:
            remove_binding(db)
            try:
                await bound._close_sessions()
            finally:
                if outer.is_active:
                    await outer.rollback()
    finally:
        await connection.close()
        if not is_sqlite_memory(engine.url):
            await engine.dispose()
