"""`Database`: engines, the app lifecycle, and units of work outside requests."""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.types import ASGIApp

from ._config import DatabaseConfig, DatabaseSettings
from ._dependencies import request_async_session, request_sync_session
from ._engines import (
    UnitMode,
    create_async_db_engine,
    create_sync_engine,
    flavour_urls,
    is_async_url,
    mask_url,
    parse_url,
    pool_capacity,
    unit_binds,
)
from ._errors import (
    BlockingSessionError,
    DatabaseBusyError,
    DatabaseUnavailableError,
    NotInitializedError,
    SessionScopeError,
)
from ._policy import BUSY_DETAIL
from ._sessions import ReadOnlyAsyncSession, ReadOnlySession, ScopedAsyncSession, ScopedSession
from ._transaction import Transaction

if TYPE_CHECKING:
    from starlette.applications import Starlette

_T = TypeVar("_T")


_all_databases: weakref.WeakSet[Database] = weakref.WeakSet()


def _forget_engines_after_fork() -> None:
    # A forked worker must not share the parent's sockets: give it fresh, empty pools.
    for db in list(_all_databases):
        db._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engines_after_fork)


class Database:
    """One database: its engines, its per-request units of work, its transactions.

    ``Database(url)``, ``Database(url, pool_size=10, ...)`` (any `DatabaseConfig` field),
    ``Database(config=DatabaseConfig(...))`` or ``Database.from_env()``. Creating it connects
    nothing; engines are created when the app starts (or on first use outside an app) and
    disposed when it stops.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        /,
        *,
        config: DatabaseConfig | None = None,
        name: str = "default",
        **options: Any,
    ) -> None:
        if config is None:
            if url is not None:
                options["url"] = url if isinstance(url, str) else url.render_as_string(False)
            config = DatabaseConfig(**options)
        elif url is not None or options:
            raise TypeError("pass either config=DatabaseConfig(...) or a URL and options, not both")
        self._config = config
        self.name = name
        self._scope_key = f"sessionscope.{name}.{id(self)}"
        self._sync_url, self._async_url = flavour_urls(config)
        self._primary_is_async = is_async_url(parse_url(config.url))
        self._sync_binds: dict[UnitMode, Engine] | None = None
        self._async_binds: dict[UnitMode, AsyncEngine] | None = None
        self._engine_lock = threading.Lock()
        self._started = False
        self._slots: anyio.Semaphore | None = None
        self._async_slots: anyio.Semaphore | None = None
        self._end_limiter: anyio.CapacityLimiter | None = None
        self._bind_override: tuple[Connection | None, AsyncConnection | None] | None = None
        _all_databases.add(self)

    @classmethod
    def from_env(cls, *, name: str = "default", **overrides: Any) -> Database:
        """Read ``DATABASE_URL`` (default: a SQLite file ``./sessionscope.db``) and
        ``DATABASE_POOL_SIZE``, ``DATABASE_MAX_OVERFLOW``, ``DATABASE_OVERFLOW_IDLE_TIMEOUT``,
        ``DATABASE_POOL_TIMEOUT``, ``DATABASE_POOL_RECYCLE``, ``DATABASE_PING_AFTER_IDLE``,
        ``DATABASE_ECHO``."""
        return cls(config=DatabaseSettings().to_config(**overrides), name=name)

    @property
    def config(self) -> DatabaseConfig:
        return self._config

    @property
    def url(self) -> str:
        """The primary URL, password masked."""
        return mask_url(self._config.url)

    def __repr__(self) -> str:
        return f"<Database {self.name!r} {self.url}>"

    # -- engines ----------------------------------------------------------------------------

    @property
    def sync_engine(self) -> Engine:
        """The engine of sync sessions, created on first use."""
        return self._sync_unit_binds()["read"]

    @property
    def async_engine(self) -> AsyncEngine:
        """The engine of async sessions, created on first use."""
        return self._async_unit_binds()["read"]

    def _sync_unit_binds(self) -> dict[UnitMode, Engine]:
        binds = self._sync_binds
        if binds is None:
            with self._engine_lock:
                if self._sync_binds is None:
                    engine = create_sync_engine(self._config, self._sync_url)
                    self._sync_binds = unit_binds(engine, self._sync_url)
                binds = self._sync_binds
        return binds

    def _async_unit_binds(self) -> dict[UnitMode, AsyncEngine]:
        binds = self._async_binds
        if binds is None:
            with self._engine_lock:
                if self._async_binds is None:
                    engine = create_async_db_engine(self._config, self._async_url)
                    self._async_binds = unit_binds(engine, self._async_url)
                binds = self._async_binds
        return binds

    def _new_sync_session(self, mode: UnitMode) -> Session:
        session_class = ReadOnlySession if mode == "readonly" else ScopedSession
        if self._bind_override is not None:
            return session_class(
                bind=_bound_connection(self._bind_override[0], "sync"),
                expire_on_commit=False,
                join_transaction_mode="create_savepoint",
            )
        return session_class(bind=self._sync_unit_binds()[mode], expire_on_commit=False)

    def _new_async_session(self, mode: UnitMode) -> AsyncSession:
        session_class = ReadOnlyAsyncSession if mode == "readonly" else ScopedAsyncSession
        if self._bind_override is not None:
            return session_class(
                bind=_bound_connection(self._bind_override[1], "async"),
                expire_on_commit=False,
                join_transaction_mode="create_savepoint",
            )
        return session_class(bind=self._async_unit_binds()[mode], expire_on_commit=False)

    def _after_fork(self) -> None:
        if self._sync_binds is not None:
            self._sync_binds["read"].dispose(close=False)
        if self._async_binds is not None:
            self._async_binds["read"].sync_engine.dispose(close=False)

    # -- app lifecycle ----------------------------------------------------------------------

    async def startup(self) -> None:
        """Create the primary engine and check that the database answers.

        Called by `lifespan`; call it yourself only when running without one.
        """
        capacity = pool_capacity(self._config, self._sync_url)
        self._slots = anyio.Semaphore(capacity) if capacity is not None else None
        # Async requests, too, wait for a connection slot in arrival order before they check
        # one out: the pool then never has waiters of its own, which it does not serve in
        # order (a request arriving while a returned connection is on its way to a waiter
        # takes it, and under steady load a waiter can starve past pool_timeout). The pool
        # keeps returned overflow connections warm, so a slot always finds one open.
        async_capacity = pool_capacity(self._config, self._async_url)
        self._async_slots = anyio.Semaphore(async_capacity) if async_capacity else None
        self._end_limiter = anyio.CapacityLimiter(capacity or 40)
        if self._primary_is_async:
            engine = self.async_engine
            if self._config.check_on_startup and self._bind_override is None:
                try:
                    async with engine.connect() as connection:
                        await connection.exec_driver_sql("SELECT 1")
                except Exception as error:
                    raise self._unavailable(error) from None
        else:
            sync_engine = self.sync_engine
            if self._config.check_on_startup and self._bind_override is None:
                try:
                    await anyio.to_thread.run_sync(_ping, sync_engine)
                except Exception as error:
                    raise self._unavailable(error) from None
        self._started = True

    async def shutdown(self) -> None:
        """Dispose of the engines: close every pooled connection."""
        self._started = False
        if self._bind_override is not None:
            # A test binding holds a connection of these engines (and, for SQLite
            # :memory:, the database itself): the binding's owner disposes of them.
            return
        async_binds, self._async_binds = self._async_binds, None
        sync_binds, self._sync_binds = self._sync_binds, None
        if async_binds is not None:
            await async_binds["read"].dispose()
        if sync_binds is not None:
            await anyio.to_thread.run_sync(sync_binds["read"].dispose)

    def _unavailable(self, error: BaseException) -> DatabaseUnavailableError:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        text = reason[0] if reason else type(error).__name__
        password = parse_url(self._config.url).password
        if password:
            text = text.replace(str(password), "***")
        return DatabaseUnavailableError(
            f"cannot reach the database at {self.url}: {text}. Check that the server runs and "
            "that DATABASE_URL is right; set check_on_startup=False to start without it."
        )

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Lifespan of an app: ``FastAPI(lifespan=db.lifespan)``.

        Installs the per-request unit of work, creates the engine at start-up and disposes
        of it at shutdown. To combine with a lifespan of your own, enter it inside yours:
        ``async with db.lifespan(app): yield``.
        """
        self.attach(app)
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    def init_app(self, app: Starlette) -> None:
        """Attach to ``app`` and run this database's lifespan around the app's own one."""
        self.attach(app)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[Any]:
            async with self.lifespan(app), inner(app) as state:
                yield state

        app.router.lifespan_context = lifespan

    def attach(self, app: Starlette) -> None:
        """Install the per-request unit of work on ``app`` (idempotent). The first database
        attached to an app is the one `DbSession` and `AsyncDbSession` use."""
        from ._asgi import UnitOfWorkBoundary

        router = app.router
        attached: list[Database] = router.__dict__.setdefault("_sessionscope_databases", [])
        if self in attached:
            return
        stack: ASGIApp = router.middleware_stack
        router.middleware_stack = UnitOfWorkBoundary(stack, self, default=not attached)
        attached.append(self)

    # -- per-request sessions ---------------------------------------------------------------

    async def _acquire_slot(self, slots: anyio.Semaphore) -> None:
        try:
            # A free slot means nobody waits (a released slot goes straight to the first
            # waiter), so taking it keeps arrival order; no timer to set up.
            slots.acquire_nowait()
        except anyio.WouldBlock:
            pass
        else:
            return
        with anyio.move_on_after(self._config.pool_timeout):
            await slots.acquire()
            return
        raise DatabaseBusyError(
            503, BUSY_DETAIL, headers={"Retry-After": str(self._config.retry_after)}
        )

    def _require_started(self) -> None:
        if not self._started:
            raise NotInitializedError(
                f"{self!r} has not started: run the app's lifespan (FastAPI(lifespan=db.lifespan) "
                "or db.init_app(app)). httpx.ASGITransport does not run it; use "
                "fastapi.testclient.TestClient as a context manager, or sessionscope.testing."
            )

    async def get_session(self, request: Request) -> Session:
        """FastAPI dependency: this database's sync session for the current request.

        ``Annotated[Session, Depends(db.get_session)]``; `DbSession` is the same for the first
        database attached to the app.
        """
        return await request_sync_session(request, self)

    async def get_async_session(self, request: Request) -> AsyncSession:
        """FastAPI dependency: this database's AsyncSession for the current request."""
        return await request_async_session(request, self)

    # -- outside requests -------------------------------------------------------------------

    def transaction(self, *, readonly: bool = False) -> Transaction:
        """A unit of work for scripts, workers, CLI commands and background tasks.

        ``with db.transaction() as session`` gives a sync `Session`;
        ``async with db.transaction() as session`` an `AsyncSession`. The block commits when it
        exits normally and rolls back when it raises; the session is closed either way and
        refuses use afterwards. A failed COMMIT raises the database's exception.
        ``readonly=True`` always rolls back (and on SQLite takes no write lock).
        """
        return Transaction(self, readonly=readonly)

    async def gather(
        self,
        *calls: Callable[[AsyncSession], Awaitable[_T]],
        limit: int = 4,
    ) -> list[_T]:
        """Run read-only ``calls`` concurrently, each with its own session and connection,
        at most ``limit`` at a time, and return their results in order.

        One AsyncSession serves one task at a time; this is the safe way to run independent
        queries of one request in parallel.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if self._bind_override is not None:
            # Under a test binding every session shares one connection: one at a time.
            limit = 1
        results: list[Any] = [None] * len(calls)
        limiter = anyio.CapacityLimiter(limit)

        async def run(index: int, call: Callable[[AsyncSession], Awaitable[_T]]) -> None:
            async with limiter, self.transaction(readonly=True) as session:
                results[index] = await call(session)

        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(run, index, call)
        return results

    def check_not_on_event_loop(self, what: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        message = (
            f"{what} runs blocking I/O on the event loop thread: every other request stalls "
            "while it waits. Use the async API (AsyncDbSession, `async with db.transaction()`), "
            "or declare the endpoint with `def` so it runs in a worker thread."
        )
        if self._config.sync_in_async == "raise":
            raise BlockingSessionError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


_C = TypeVar("_C", Connection, AsyncConnection)


def _bound_connection(connection: _C | None, flavour: str) -> _C:
    if connection is None:
        # Falling back to the engine would let this session escape the test's transaction.
        raise SessionScopeError(
            f"this database is bound to a test transaction that has no {flavour} connection: "
            f"a {flavour} session here would write outside the test's rollback. Bind the "
            f"{flavour} flavour instead (sessionscope.testing), or use one session flavour "
            "in the app and the test."
        )
    return connection


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")


__all__: Sequence[str] = ("Database",)
