"""`Database`: the extension object. Configuration, attaching to apps, dependencies.

What exists while an app runs (engines, connection slots, limits) is a `Runtime` made by that
app's lifespan and kept for that app, so one `Database` can serve several apps at once.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from starlette.requests import Request
from typing_extensions import Unpack

from ._asgi import UnitOfWorkBoundary
from ._config import DatabaseConfig, DatabaseOptions
from ._dependencies import (
    hoist_route_options,
    hoist_session_parameters,
    request_async_session,
    request_sync_session,
)
from ._engines import mask_url
from ._env import config_from_env
from ._errors import ConfigurationError
from ._observe import observation_var
from ._replicas import ReplicaStatus
from ._runtime import (
    Attachment,
    Binder,
    Flavour,
    Runtime,
    add_attachment,
    attachments_of,
    binding_of,
)
from ._stats import DatabaseStats
from ._transaction import Transaction
from ._tuning import IsolationLevel
from ._unit import check_not_on_event_loop, current_unit

if TYPE_CHECKING:
    from starlette.applications import Starlette

_T = TypeVar("_T")


class Database:
    """One database: configuration, per-request units of work, transactions.

    ``Database(url)``, ``Database(url, pool_size=10, ...)`` (any `DatabaseConfig` field),
    ``Database(config=DatabaseConfig(...))`` or ``Database.from_env()``. Creating it connects
    nothing. Each app it is attached to gets its own engines, created and checked when that
    app starts and disposed of when it stops; scripts get engines on first use.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        /,
        *,
        config: DatabaseConfig | None = None,
        name: str = "default",
        **options: Unpack[DatabaseOptions],
    ) -> None:
        if config is None:
            values: dict[str, Any] = dict(options)
            if url is not None:
                values["url"] = url if isinstance(url, str) else url.render_as_string(False)
            config = DatabaseConfig.from_options(values)
        elif url is not None or options:
            raise ConfigurationError(
                "pass either config=DatabaseConfig(...) or a URL and options, not both"
            )
        self._config = config
        self.name = name
        self.scope_key = f"sessionscope.{name}.{id(self)}"
        """The key of this database's unit of work in a request's ASGI scope."""
        # Used without an app (scripts, workers), or by hand with `startup`/`shutdown`.
        # Every runtime of this database attributes statements through one context variable.
        self._observations = observation_var()
        self._standalone = Runtime(config, name=name, observations=self._observations)
        self._app_runtimes: weakref.WeakKeyDictionary[Any, Runtime] = weakref.WeakKeyDictionary()

    @classmethod
    def from_env(
        cls,
        *,
        name: str = "default",
        env_file: str | Path | None = None,
        default_url: str | None = None,
        **overrides: Unpack[DatabaseOptions],
    ) -> Database:
        """Read ``DATABASE_URL`` and the other ``DATABASE_*`` variables (every
        `DatabaseConfig` field but ``engine_options``); keyword ``overrides`` win.

        ``env_file``: also read this ``.env`` file (environment variables win over it, as in
        pydantic-settings). ``default_url``: the URL when ``DATABASE_URL`` is set nowhere;
        without it, a missing ``DATABASE_URL`` is a `ConfigurationError`, never a silent
        fallback to a local file.
        """
        config = config_from_env(
            env_file=env_file, default_url=default_url, overrides=dict(overrides)
        )
        return cls(config=config, name=name)

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

    def _runtime(self) -> Runtime:
        """The runtime serving the caller: the current request's app, else the app that
        started last and still runs, else the one for use without an app."""
        unit = current_unit.get()
        if unit is not None and unit.owner is self and isinstance(unit.binder, Runtime):
            return unit.binder
        running = [runtime for runtime in self._app_runtimes.values() if runtime.started]
        return running[-1] if running else self._standalone

    def _binder(self) -> Binder:
        return binding_of(self) or self._runtime()

    @property
    def sync_engine(self) -> Engine:
        """The engine of sync sessions (of the running app; outside apps, created on first
        use)."""
        return self._runtime().sync_engine

    @property
    def async_engine(self) -> AsyncEngine:
        """The engine of async sessions (of the running app; outside apps, created on first
        use)."""
        return self._runtime().async_engine

    def stats(self) -> DatabaseStats:
        """Pool and unit-of-work metrics of the running app (the current request's app, else
        the one that started last): the pools now (checked out, idle, overflow, requests
        waiting for a connection) and, since that app started, outcomes of request units and
        per-route waits for a connection and hold times. See `DatabaseStats`."""
        return self._runtime().stats()

    # -- app lifecycle ----------------------------------------------------------------------

    async def startup(self) -> None:
        """Create and check the engines for use without a lifespan: requests of apps this
        database is attached to, and `transaction` blocks. The lifespan does this per app."""
        await self._standalone.start(check=self._config.check_on_startup)

    async def shutdown(self) -> None:
        """Dispose of the engines made for use without an app (by `startup`, by scripts)."""
        await self._standalone.stop()

    def close(self) -> None:
        """`shutdown` for scripts without an event loop: close every pooled connection."""
        self._standalone.stop_sync()

    def __enter__(self) -> Database:
        """``with db:`` in a script: the engines it used are disposed of at the end."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Database:
        """``async with db:`` in an async script: `shutdown` at the end."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Lifespan of an app: ``FastAPI(lifespan=db.lifespan)``.

        Installs the per-request unit of work, creates and checks this app's engines at
        start-up and disposes of them at shutdown. To combine with a lifespan of your own,
        enter it inside yours: ``async with db.lifespan(app): yield``.
        """
        attachment = self.attach(app)
        hoist_route_options(app)
        needed = _flavours_used_by(app)
        if attachment.default:
            attachment.session_parameters = hoist_session_parameters(app)
        runtime = Runtime(self._config, name=self.name, observations=self._observations)
        # Under a test binding every unit runs on the test's connection: connecting here
        # would only cost time. The engines are still made if a request comes after it.
        check = self._config.check_on_startup and binding_of(self) is None
        await runtime.start(needed=needed, check=check)
        self._app_runtimes[app] = runtime
        attachment.runtime = runtime
        try:
            yield
        finally:
            attachment.runtime = self._standalone
            self._app_runtimes.pop(app, None)
            await runtime.stop()

    def init_app(self, app: Starlette) -> None:
        """Attach to ``app`` and run this database's lifespan around the app's own one."""
        self.attach(app)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[Any]:
            async with self.lifespan(app), inner(app) as state:
                yield state

        app.router.lifespan_context = lifespan

    def attach(self, app: Starlette) -> Attachment:
        """Install the per-request unit of work on ``app`` (idempotent). The first database
        attached to an app is the one `DbSession` and `AsyncDbSession` use."""
        attached = attachments_of(app)
        for attachment in attached:
            if attachment.owner is self:
                return attachment
        attachment = Attachment(
            self,
            config=self._config,
            scope_key=self.scope_key,
            label=repr(self),
            default=not attached,
            standalone=self._standalone,
        )
        router = app.router
        router.middleware_stack = UnitOfWorkBoundary(router.middleware_stack, attachment)
        add_attachment(app, attachment)
        return attachment

    # -- per-request sessions ---------------------------------------------------------------

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

    def transaction(
        self,
        *,
        readonly: bool = False,
        primary: bool = False,
        isolation: IsolationLevel | None = None,
        statement_timeout: float | None = None,
        retries: int = 0,
    ) -> Transaction:
        """A unit of work for scripts, workers, CLI commands and background tasks.

        ``with db.transaction() as session`` gives a sync `Session`;
        ``async with db.transaction() as session`` an `AsyncSession`. The block commits when it
        exits normally and rolls back when it raises; the session is closed either way and
        refuses use afterwards. A failed COMMIT raises the database's exception.
        ``readonly=True`` refuses writes and ends without a COMMIT, as a read-only route does
        (on SQLite it takes no write lock; on PostgreSQL it runs without BEGIN/COMMIT).
        With `replicas` configured a read-only block runs on a healthy replica, unless
        ``primary=True``.

        ``isolation`` sets the transaction isolation level and ``statement_timeout`` the
        seconds each statement may run (default: the database's ``statement_timeout``).
        ``retries=N`` re-runs the whole block up to N times on a serialization failure or a
        deadlock: a `with` block cannot re-run itself, so such a transaction is a loop of
        attempts, ``for attempt in db.transaction(retries=3): with attempt as session: ...``
        (``async for`` / ``async with``), or a decorator of a function taking the session,
        ``@db.transaction(retries=3)``. `after_commit` callbacks run once, for the attempt
        that committed.
        """
        return Transaction(
            self,
            self._config,
            self._binder,
            readonly=readonly,
            primary=primary,
            isolation=isolation,
            statement_timeout=statement_timeout,
            retries=retries,
        )

    def replica_status(self) -> list[ReplicaStatus]:
        """What the monitors last found about each replica of the running app (or of
        `startup`): health, lag, replayed position. Empty without replicas."""
        return self._runtime().replica_status()

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
            raise ConfigurationError(f"limit must be at least 1, got {limit}")
        if self._binder().shares_one_connection:
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
        """Refuse (or warn about, per ``sync_in_async``) blocking I/O on the event loop."""
        check_not_on_event_loop(self._config, what)


def _flavours_used_by(app: Any) -> frozenset[Flavour]:
    # Imported here: discovery reads `Database`'s dependencies, defined above.
    from ._discovery import session_flavours

    return frozenset(session_flavours(app))


__all__: Sequence[str] = ("Database",)
