"""A unit of work: at most one session, ended exactly once by commit or rollback, then closed.

Requests and ``db.transaction()`` blocks both end their work here, so they share every
guarantee: the commit error is reported, the session is closed on every path (cancellation
included), `after_commit` callbacks run only after a successful commit, and the session
refuses any use after the end.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, AsyncTransaction
from sqlalchemy.orm import Session

from ._bookmarks import (
    UNREADABLE,
    bookmark_of,
    parse_lsn,
)
from ._config import DatabaseConfig
from ._errors import BlockingSessionError, SessionScopeError
from ._idempotency import Claim
from ._observe import Observation
from ._policy import CommitPolicy, http_error_for
from ._reconnect import arm
from ._replicas import Replica
from ._runtime import Attachment, Binder, Runtime, UnitMode
from ._session_kinds import session_classes
from ._sessions import UNIT_KEY, ending, has_pending_work, seal
from ._slots import ConnectionSlots
from ._tuning import IsolationLevel

logger = logging.getLogger("sessionscope")

AfterCommit = Callable[[], Any]

current_unit: contextvars.ContextVar[UnitOfWork | None] = contextvars.ContextVar(
    "sessionscope_current_unit", default=None
)


_JOIN_OPTIONS: dict[str, Any] = {
    "expire_on_commit": False,
    "join_transaction_mode": "create_savepoint",
}


class UnitOfWork:
    """The state of one unit of work. Created per request (cheaply: no session, no connection)
    or per ``db.transaction()`` block."""

    __slots__ = (
        "_after_commit",
        "_driver_transaction",
        "_ended_message",
        "_nested",
        "_slot",
        "async_connection",
        "async_session",
        "attachment",
        "binder",
        "bookmark",
        "config",
        "driver",
        "driver_proxy",
        "ended",
        "idempotency",
        "isolation",
        "keep_for_stream",
        "min_lsn",
        "mode",
        "observation",
        "owner",
        "policy",
        "primary",
        "query_budget",
        "replica",
        "retries",
        "route",
        "route_options_applied",
        "statement_timeout",
        "stream_status",
        "sync_session",
    )

    def __init__(
        self,
        owner: object,
        config: DatabaseConfig,
        *,
        mode: UnitMode,
        policy: CommitPolicy,
        attachment: Attachment | None = None,
    ) -> None:
        self.owner = owner
        """The `Database` this unit belongs to."""
        self.config = config
        self.attachment = attachment
        """The app the unit's request runs in (``None`` outside requests)."""
        self.binder: Binder | None = None
        """Where the unit runs; set when its session opens."""
        self.mode: UnitMode = mode
        self.policy: CommitPolicy = policy
        self.route: str | None = None
        """``METHOD /path`` of the request's route, for messages (``None`` outside requests)."""
        self.primary = False
        """Run on the primary even when read-only (``unit_of_work(primary=True)``)."""
        self.min_lsn = 0
        """The WAL position of the bookmark the request presented (``0``: none)."""
        self.replica: Replica | None = None
        """The replica the unit runs on (``None``: the primary)."""
        self.bookmark: str | None = None
        """The primary's WAL position after this unit's COMMIT (with replicas only)."""
        self.isolation: IsolationLevel | None = None
        """The transaction isolation level (``None``: the database's default)."""
        self.statement_timeout: float | None = config.statement_timeout
        """Seconds each statement may run (``None``: no limit)."""
        self.retries = 0
        self.route_options_applied = False
        """How many times a request's unit of work is re-run on a retryable error."""
        self.keep_for_stream = False
        self.idempotency: Claim | None = None
        """The request's claimed ``Idempotency-Key`` (``unit_of_work(idempotency=True)``)."""
        self.stream_status: int | None = None
        self.sync_session: Session | None = None
        self.async_session: AsyncSession | None = None
        self.async_connection: AsyncConnection | None = None
        """The unit's connection when it runs on the driver (the fast path), not a session."""
        self.driver: Any = None
        """The driver's connection under `async_connection` (asyncpg's, psycopg's)."""
        self.driver_proxy: Any = None
        self._nested: AsyncTransaction | None = None
        self._driver_transaction: Any = None
        self.ended = False
        self._after_commit: list[AfterCommit] | None = None
        self._slot: ConnectionSlots | None = None
        self._ended_message = ""
        self.query_budget: int | None = None
        """The route's own statement budget (``unit_of_work(query_budget=...)``)."""
        self.observation: Observation | None = None
        """What the request's unit did (statements, waits), when its runtime observes."""

    @property
    def active(self) -> bool:
        return (
            self.sync_session is not None
            or self.async_session is not None
            or self.async_connection is not None
        )

    def ended_reason(self) -> str:
        """Why the unit refuses further use."""
        return self._ended_message or "this unit of work has ended"

    def add_after_commit(self, callback: AfterCommit) -> None:
        if self.ended:
            raise SessionScopeError(
                "after_commit() was called after the unit of work ended; register the callback "
                "while the request (or the transaction block) is still running"
            )
        if self._after_commit is None:
            self._after_commit = []
        self._after_commit.append(callback)

    # -- sessions ---------------------------------------------------------------------------

    def open_sync(self, binder: Binder, ended_message: str) -> Session:
        self.binder = binder
        bind = binder.bind_for(self)
        session_class = self._session_classes()[0]
        if isinstance(bind, Connection):
            # A connection holds an outer transaction (a test's): the session's commit and
            # rollback work on SAVEPOINTs inside it.
            session = session_class(bind=bind, **_JOIN_OPTIONS)
        else:
            session = session_class(bind=bind, expire_on_commit=False)
            arm(session, self.config.reconnect_retries)
        session.info[UNIT_KEY] = self
        self._ended_message = ended_message
        self.sync_session = session
        return session

    def open_async(self, binder: Binder, ended_message: str) -> AsyncSession:
        self.binder = binder
        bind = binder.async_bind_for(self)
        session_class = self._session_classes()[1]
        if isinstance(bind, AsyncConnection):
            session = session_class(bind=bind, **_JOIN_OPTIONS)
        else:
            session = session_class(bind=bind, expire_on_commit=False)
            arm(session.sync_session, self.config.reconnect_retries)
        session.sync_session.info[UNIT_KEY] = self
        self._ended_message = ended_message
        self.async_session = session
        return session

    async def open_connection(self, binder: Binder, ended_message: str) -> None:
        """Run the unit on a connection of its own, without a session (the fast path): the
        driver's connection is `driver`, a proxy that refuses use after the end
        `driver_proxy`."""
        from ._driver import DriverConnection, begin_on_driver

        self.binder = binder
        self._ended_message = ended_message
        bind = binder.async_bind_for(self)
        if isinstance(bind, AsyncConnection):
            # A test's outer transaction: the unit's work goes in a SAVEPOINT inside it.
            connection = bind
            self._nested = await bind.begin_nested()
        else:
            connection = await bind.connect()
        self.async_connection = connection
        try:
            self.driver, self._driver_transaction = await begin_on_driver(
                connection, in_savepoint=self._nested is not None
            )
        except BaseException:
            self.async_connection = None
            with anyio.CancelScope(shield=True):
                await self._end_connection(connection, commit=False)
            raise
        self.driver_proxy = DriverConnection(self.driver, self)

    async def _end_connection(
        self, connection: AsyncConnection, commit: bool
    ) -> BaseException | None:
        error: BaseException | None = None
        nested, self._nested = self._nested, None
        driver_transaction, self._driver_transaction = self._driver_transaction, None
        try:
            if driver_transaction is not None:
                # asyncpg's own transaction (see `begin_on_driver`).
                try:
                    await (driver_transaction.commit() if commit else driver_transaction.rollback())
                except Exception as end_error:
                    if commit:
                        error = end_error
                    if self.driver.is_closed():
                        await connection.invalidate()
                    elif self.driver.is_in_transaction():
                        await self.driver.execute("ROLLBACK")
                    if not commit:
                        raise
                return error
            transaction = nested if nested is not None else connection.get_transaction()
            if transaction is not None and transaction.is_active:
                if commit:
                    try:
                        await transaction.commit()
                    except Exception as commit_error:
                        error = commit_error
                        if transaction.is_active:
                            await transaction.rollback()
                else:
                    await transaction.rollback()
        finally:
            if nested is None:
                # A connection of its own goes back to the pool (rolled back if still open).
                await connection.close()
        return error

    def _session_classes(self) -> tuple[type[Session], type[AsyncSession]]:
        # A writing unit of a database with replicas reads the primary's WAL position after
        # its COMMIT, for the response's bookmark.
        return session_classes(
            self.config.session_class,
            readonly=self.mode == "readonly",
            bookmark=bool(self.config.replicas),
        )

    def hold_slot(self, slot: ConnectionSlots) -> None:
        """Record a connection slot taken for this unit; `end` gives it back."""
        self._slot = slot

    # -- the end ----------------------------------------------------------------------------

    def would_commit(self) -> bool:
        """Whether ending with a commit would send one: the session has a transaction open or
        changes waiting (a fast-path connection always has its transaction)."""
        if self.async_session is not None:
            return has_pending_work(self.async_session.sync_session)
        if self.sync_session is not None:
            return has_pending_work(self.sync_session)
        return self.async_connection is not None

    def end_unused(self) -> None:
        """End a unit that never opened a session (no I/O); a slot it took is given back."""
        self.ended = True
        self._release_slot()

    async def end(self, commit: bool) -> BaseException | None:
        """Commit (when ``commit``) or roll back, close, release. Returns the commit error.

        Runs to completion even when the calling task is cancelled: a half-ended unit would
        leave a connection checked out or idle in transaction.
        """
        if self.ended:
            return None
        self.ended = True
        error: BaseException | None = None
        # A read-only session has nothing to commit: closing it ends its reads just as well,
        # without the ORM's commit machinery. "Committed" still holds for after_commit.
        send_commit = commit and self.mode != "readonly"
        with anyio.CancelScope(shield=True):
            try:
                if self.async_session is not None:
                    error = await self._end_async(self.async_session, send_commit)
                elif self.async_connection is not None:
                    error = await self._end_connection(self.async_connection, send_commit)
                elif self.sync_session is not None:
                    limiter = self.binder.end_limiter if self.binder is not None else None
                    error = await anyio.to_thread.run_sync(
                        _end_sync,
                        self.sync_session,
                        send_commit,
                        self._ended_message,
                        limiter=limiter,
                    )
            finally:
                self._release_slot()
                if self.observation is not None:
                    self._observe_end(self.observation, commit, error)
            if send_commit and error is None and self.config.replicas:
                self._keep_bookmark()
            if commit and error is None and self._after_commit:
                await self._run_after_commit()
        return error

    def end_sync(self, commit: bool) -> BaseException | None:
        """`end` for sync code outside the event loop (``with db.transaction()``)."""
        if self.ended:
            return None
        self.ended = True
        error = None
        if self.sync_session is not None:
            error = _end_sync(
                self.sync_session, commit and self.mode != "readonly", self._ended_message
            )
            if commit and error is None and self.config.replicas:
                self._keep_bookmark()
        if commit and error is None and self._after_commit:
            for callback in self._after_commit:
                result = _call_logged(callback)
                if inspect.iscoroutine(result):
                    result.close()
                    logger.error(
                        "after_commit callback %r is a coroutine function, which a sync "
                        "transaction cannot await; use `async with db.transaction()`",
                        callback,
                    )
        return error

    async def _end_async(self, session: AsyncSession, commit: bool) -> BaseException | None:
        error: BaseException | None = None
        # Another task's query still running on the session (asyncio.gather) finishes first.
        async with ending(session):
            try:
                if commit and has_pending_work(session.sync_session):
                    await session.commit()
            except Exception as commit_error:
                error = commit_error
            finally:
                try:
                    # close() rolls back whatever is still open and returns the connection.
                    await session.close()
                finally:
                    seal(session, self._ended_message)
        return error

    def _keep_bookmark(self) -> None:
        session = self.async_session.sync_session if self.async_session else self.sync_session
        if session is not None:
            self.bookmark = bookmark_of(session)
        position = parse_lsn(self.bookmark) if self.bookmark is not None else None
        if position is not None and position != UNREADABLE and isinstance(self.binder, Runtime):
            self.binder.note_commit(position)

    def _observe_end(
        self, observation: Observation, commit: bool, error: BaseException | None
    ) -> None:
        failed_status: int | None = None
        if error is not None:
            http_error = http_error_for(error, retry_after=self.config.retry_after, at_commit=True)
            failed_status = http_error.status_code if http_error is not None else 500
        if self.attachment is not None:
            self.attachment.runtime.observer.end(observation, commit, failed_status)

    def _release_slot(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()

    async def _run_after_commit(self) -> None:
        assert self._after_commit is not None
        for callback in self._after_commit:
            result = _call_logged(callback)
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception:
                    logger.exception("after_commit callback %r failed", callback)


def _end_sync(session: Session, commit: bool, ended_message: str) -> BaseException | None:
    error: BaseException | None = None
    try:
        if commit and has_pending_work(session):
            session.commit()
    except Exception as commit_error:
        error = commit_error
    finally:
        try:
            session.close()
        finally:
            seal(session, ended_message)
    return error


def check_not_on_event_loop(config: DatabaseConfig, what: str) -> None:
    """Refuse (or warn about, per ``sync_in_async``) blocking database I/O on the event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    message = (
        f"{what} runs blocking I/O on the event loop thread: every other request stalls "
        "while it waits. Use the async API (AsyncDbSession, `async with db.transaction()`), "
        "or declare the endpoint with `def` so it runs in a worker thread."
    )
    if config.sync_in_async == "raise":
        raise BlockingSessionError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _call_logged(callback: AfterCommit) -> Awaitable[Any] | None:
    try:
        result = callback()
    except Exception:
        logger.exception("after_commit callback %r failed", callback)
        return None
    return result if inspect.isawaitable(result) else None


def after_commit(callback: AfterCommit, *, session: Session | AsyncSession | None = None) -> None:
    """Run ``callback`` once the current unit of work has committed, and only if it did.

    Use it for side effects that must not happen for a write that was rolled back: enqueueing
    a job, sending mail. ``callback`` takes no arguments and may be a coroutine function
    (awaited in async units). Its failure is logged and does not undo the commit.

    The unit is the one of ``session`` when given, otherwise the one the current request or
    ``db.transaction()`` block runs in.
    """
    unit: UnitOfWork | None
    if session is not None:
        sync_session = session.sync_session if isinstance(session, AsyncSession) else session
        unit = sync_session.info.get(UNIT_KEY)
    else:
        unit = current_unit.get()
    if unit is None:
        raise SessionScopeError(
            "after_commit() found no unit of work: call it inside a request that uses a "
            "sessionscope session, inside `db.transaction()`, or pass session=..."
        )
    unit.add_after_commit(callback)
