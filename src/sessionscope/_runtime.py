"""The runtime of a `Database`: what exists while an app (or a script) uses it.

A `Database` is configuration. A `Runtime` holds the state: the engine of each flavour, the
connection slots that requests wait for in arrival order, the limiter of the threads that end
sync units, and the fork reset. The app's lifespan makes one runtime per app and disposes of it
when that app stops, so one `Database` can serve several apps at once; scripts get one on first
use.

Every unit of work asks the object it runs on one question, `bind_for`: which engine, with
which connection options, or which connection. `Runtime` answers it from the configuration;
a test binding (`sessionscope.testing`) answers it with the connection that holds the test's
outer transaction. This is the one place where that decision is made.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal, Protocol, TypeVar

import anyio
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ._config import DatabaseConfig
from ._engines import (
    SQLITE_BEGIN_OPTION,
    create_async_db_engine,
    create_sync_engine,
    flavour_urls,
    is_async_url,
    mask_url,
    parse_url,
    pool_capacity,
)
from ._errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    MissingDriverError,
    NotInitializedError,
)
from ._observe import Observation, Observer
from ._replicas import Replica, ReplicaSet, ReplicaStatus
from ._slots import ConnectionSlots
from ._stats import DatabaseStats, PoolStats, pool_stats
from ._tuning import (
    STATEMENT_TIMEOUT_OPTION,
    IsolationLevel,
    install_statement_timeout,
    tuning_options,
)
from ._urls import describe_flavours

logger = logging.getLogger("sessionscope")

Flavour = Literal["sync", "async"]

UnitMode = Literal["read", "write", "readonly"]
"""What a unit of work does. ``"read"`` and ``"write"`` run in a transaction (on SQLite a
writer takes the write lock at BEGIN); ``"readonly"`` refuses writes, ends without a COMMIT
and, on PostgreSQL, runs without a transaction: no BEGIN/COMMIT round trips."""


class UnitNeeds(Protocol):
    """What `bind_for` reads of a unit of work."""

    @property
    def mode(self) -> UnitMode: ...

    @property
    def primary(self) -> bool:
        """The unit must run on the primary, even when it only reads."""
        ...

    @property
    def min_lsn(self) -> int:
        """The WAL position (a bookmark) a replica must have replayed to serve the unit."""
        ...

    replica: Replica | None
    """The replica `bind_for` chose (``None``: the primary)."""

    @property
    def isolation(self) -> IsolationLevel | None: ...

    @property
    def statement_timeout(self) -> float | None: ...


class Binder(Protocol):
    """Where units of work run: a `Runtime`, or a test binding."""

    @property
    def config(self) -> DatabaseConfig: ...

    @property
    def shares_one_connection(self) -> bool:
        """Every unit runs on one connection: units must take turns."""
        ...

    @property
    def end_limiter(self) -> anyio.CapacityLimiter | None:
        """Limits the worker threads that end sync units (``None``: AnyIO's default)."""
        ...

    def bind_for(self, unit: UnitNeeds) -> Engine | Connection:
        """The bind of a sync session of ``unit``."""
        ...

    def async_bind_for(self, unit: UnitNeeds) -> AsyncEngine | AsyncConnection:
        """The bind of an AsyncSession of ``unit``."""
        ...

    def slots(self, flavour: Flavour) -> ConnectionSlots | None:
        """The connection slots a request of ``flavour`` waits for, if any."""
        ...


_E = TypeVar("_E", Engine, AsyncEngine)


def connection_options(
    backend: str,
    mode: UnitMode,
    *,
    isolation: IsolationLevel | None = None,
    statement_timeout: float | None = None,
    pgbouncer: bool = False,
) -> Mapping[str, Any]:
    """The execution options a unit of ``mode`` needs on ``backend``'s connections, with its
    isolation level and statement timeout (see `_tuning`), behind PgBouncer or not."""
    tuned = tuning_options(backend, isolation, statement_timeout)
    if (tuned or pgbouncer) and mode == "readonly" and backend == "postgresql":
        # A level or a SET LOCAL needs a transaction, and so does PgBouncer (see
        # `_pgbouncer`): a read-only one, not autocommit.
        return {**tuned, "postgresql_readonly": True}
    if tuned:
        return {**connection_options(backend, mode), **tuned}
    if mode == "write" and backend == "sqlite":
        # Take the write lock at BEGIN: concurrent read-modify-write units queue instead of
        # losing updates (or failing to upgrade a read lock).
        return {SQLITE_BEGIN_OPTION: "IMMEDIATE"}
    if mode == "readonly" and backend == "postgresql":
        # Autocommit costs no round trip on PostgreSQL's drivers (a client-side flag): no
        # BEGIN, no COMMIT. MySQL's drivers toggle it with a statement each way, and SQLite's
        # BEGIN is in-process anyway.
        return {"isolation_level": "AUTOCOMMIT"}
    return {}


_all_runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _forget_engines_after_fork() -> None:
    # A forked worker must not share the parent's sockets: give it fresh, empty pools.
    for runtime in list(_all_runtimes):
        runtime.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engines_after_fork)


class Runtime:
    """The engines and limits of one `Database` for one app (or for scripts).

    Engines are created by `start` (both flavours, each checked) or, outside an app, on first
    use. `stop` disposes of them.
    """

    def __init__(
        self,
        config: DatabaseConfig,
        *,
        name: str = "default",
        observations: ContextVar[Observation | None] | None = None,
    ) -> None:
        self._config = config
        self.name = name
        self.observer = Observer(config, observations)
        """Metrics, statement accounting and spans of this runtime's units of work."""
        self._exporter: Any = None
        self.sync_url, self.async_url = flavour_urls(config)
        self.primary_flavour: Flavour = "async" if is_async_url(parse_url(config.url)) else "sync"
        self._sync_engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._sync_binds: dict[BindKey, Engine] = {}
        self._async_binds: dict[BindKey, AsyncEngine] = {}
        self._deferred: dict[Flavour, MissingDriverError] = {}
        self._lock = threading.Lock()
        self._sync_slots: ConnectionSlots | None = None
        self._async_slots: ConnectionSlots | None = None
        self._end_limiter: anyio.CapacityLimiter | None = None
        self._replicas = ReplicaSet(config) if config.replicas else None
        self.last_commit = 0
        """The WAL position of the latest commit of this runtime's units (with replicas):
        `db.transaction(readonly=True)` blocks read at least that far."""
        self.started = False
        _all_runtimes.add(self)

    @property
    def config(self) -> DatabaseConfig:
        return self._config

    @property
    def shares_one_connection(self) -> bool:
        return False

    @property
    def end_limiter(self) -> anyio.CapacityLimiter | None:
        return self._end_limiter

    # -- engines ----------------------------------------------------------------------------

    @property
    def sync_engine(self) -> Engine:
        engine = self._sync_engine
        if engine is None:
            with self._lock:
                if self._sync_engine is None:
                    self._raise_deferred("sync")
                    self._sync_engine = create_sync_engine(self._config, self.sync_url)
                    self.observer.watch(self._sync_engine)
                engine = self._sync_engine
        return engine

    @property
    def async_engine(self) -> AsyncEngine:
        engine = self._async_engine
        if engine is None:
            with self._lock:
                if self._async_engine is None:
                    self._raise_deferred("async")
                    self._async_engine = create_async_db_engine(self._config, self.async_url)
                    self.observer.watch(self._async_engine.sync_engine)
                engine = self._async_engine
        return engine

    def _raise_deferred(self, flavour: Flavour) -> None:
        error = self._deferred.get(flavour)
        if error is not None:
            raise MissingDriverError(str(error))

    def _replica_engine(self, unit: UnitNeeds, flavour: Flavour) -> Engine | AsyncEngine | None:
        """The engine of a replica that may serve ``unit`` (noted on it), if any."""
        if self._replicas is None or unit.mode != "readonly" or unit.primary:
            return None
        chosen = self._replicas.pick(flavour, unit.min_lsn)
        if chosen is None:
            return None
        unit.replica = chosen[0]
        return chosen[1]

    def bind_for(self, unit: UnitNeeds) -> Engine:
        replica = self._replica_engine(unit, "sync")
        if replica is not None:
            assert isinstance(replica, Engine)
            return replica
        key = _bind_key(unit)
        bind = self._sync_binds.get(key)
        if bind is None:
            bind = _with_options(
                self.sync_engine, self.sync_url, key, pgbouncer=self._config.pgbouncer
            )
            if len(self._sync_binds) < MAX_KEPT_BINDS:
                self._sync_binds[key] = bind
        return bind

    def async_bind_for(self, unit: UnitNeeds) -> AsyncEngine:
        replica = self._replica_engine(unit, "async")
        if replica is not None:
            assert isinstance(replica, AsyncEngine)
            return replica
        key = _bind_key(unit)
        bind = self._async_binds.get(key)
        if bind is None:
            bind = _with_options(
                self.async_engine, self.async_url, key, pgbouncer=self._config.pgbouncer
            )
            if len(self._async_binds) < MAX_KEPT_BINDS:
                self._async_binds[key] = bind
        return bind

    def slots(self, flavour: Flavour) -> ConnectionSlots | None:
        return self._sync_slots if flavour == "sync" else self._async_slots

    async def wait_for_replica(self, unit: UnitNeeds) -> None:
        """Give a replica up to ``bookmark_wait`` to replay the unit's bookmark, so that
        `bind_for` can send it there; no wait when one already has."""
        if (
            self._replicas is not None
            and unit.min_lsn
            and unit.mode == "readonly"
            and not unit.primary
            and self._config.bookmark_wait > 0
        ):
            await self._replicas.catch_up(unit.min_lsn, self._config.bookmark_wait)

    def note_commit(self, position: int) -> None:
        """Record the bookmark of a commit of one of this runtime's units."""
        if position > self.last_commit:
            self.last_commit = position

    def replica_status(self) -> list[ReplicaStatus]:
        """What the monitors last found about each replica (empty without replicas)."""
        return self._replicas.status() if self._replicas is not None else []

    def stats(self) -> DatabaseStats:
        """The pools now, and what this runtime's request units of work have done."""
        pools: dict[str, PoolStats] = {}
        if self._sync_engine is not None:
            pools["sync"] = pool_stats(self._sync_engine.pool, self._sync_slots)
        if self._async_engine is not None:
            pools["async"] = pool_stats(self._async_engine.pool, self._async_slots)
        return self.observer.metrics.snapshot(pools)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, *, needed: frozenset[Flavour] = frozenset(), check: bool = True) -> None:
        """Create the engines of both flavours and, when ``check``, connect once with each.

        Every misconfiguration stops start-up with a `ConfigurationError`. A flavour that is
        neither the URL's own nor in ``needed`` (what the app's routes ask for) may lack its
        driver: it is then left out, and its first use raises `MissingDriverError`.
        """
        # Exporters first: one that cannot start (a missing extra, a name taken) stops start-up
        # before any connection is opened.
        self._start_exporters()
        try:
            await self._start_engines(needed, check)
        except BaseException:
            # A check that fails after another engine connected (the sync one answers, the
            # async one does not): nothing of a runtime that never started stays open.
            with anyio.CancelScope(shield=True):
                await self.stop()
            raise
        self.started = True

    async def _start_engines(self, needed: frozenset[Flavour], check: bool) -> None:
        capacity = pool_capacity(self._config, self.sync_url)
        # Sync requests wait for a slot on the event loop before they take a worker thread, so
        # threads never sit blocked on an exhausted pool (no pool/threadpool deadlock). Async
        # requests wait for one too, in arrival order: the pool then never has waiters of its
        # own, which it does not serve in order (under steady load a waiter could starve past
        # pool_timeout). The pool keeps returned overflow connections warm, so a slot always
        # finds one open.
        shed = self._config.shed_overload
        self._sync_slots = ConnectionSlots(capacity, shed=shed) if capacity is not None else None
        async_capacity = pool_capacity(self._config, self.async_url)
        self._async_slots = ConnectionSlots(async_capacity, shed=shed) if async_capacity else None
        self._end_limiter = anyio.CapacityLimiter(capacity or 40)
        required = needed | {self.primary_flavour}
        for flavour in ("sync", "async"):
            try:
                _ = self.sync_engine if flavour == "sync" else self.async_engine
            except MissingDriverError as error:
                if flavour in required:
                    raise
                self._deferred[flavour] = error
            except ConfigurationError:
                raise
            except Exception as error:
                url = self.sync_url if flavour == "sync" else self.async_url
                raise ConfigurationError(
                    f"cannot create the {flavour} engine for {mask_url(url)}: {error}. Check "
                    "engine_options and the pool settings."
                ) from None
        if check:
            if self._sync_engine is not None:
                await self._check(self._sync_engine, self.sync_url)
            if self._async_engine is not None:
                await self._check(self._async_engine, self.async_url)
        if self._replicas is not None:
            # A replica that is down does not stop start-up: reads go to the primary until
            # its monitor finds it answering.
            flavours: set[Flavour] = set()
            if self._sync_engine is not None:
                flavours.add("sync")
            if self._async_engine is not None:
                flavours.add("async")
            self._replicas.create_engines(
                (self.sync_url, self.async_url),
                flavours,
                connection_options("postgresql", "readonly"),
            )
            await self._replicas.start()
        self.started = True
        logger.info("%s", describe_flavours(self.sync_url, self.async_url, self._deferred))

    def _start_exporters(self) -> None:
        if self._config.opentelemetry and self.observer.tracer is None:
            from ._otel import make_tracer

            self.observer.tracer = make_tracer()
        if self._config.prometheus and self._exporter is None:
            from ._prometheus import export

            export(self.name, self.stats)
            self._exporter = self.stats

    def _stop_exporters(self) -> None:
        exporter, self._exporter = self._exporter, None
        if exporter is not None:
            from ._prometheus import unexport

            unexport(self.name, exporter)

    async def _check(self, engine: Engine | AsyncEngine, url: URL) -> None:
        try:
            if isinstance(engine, AsyncEngine):
                async with engine.connect() as connection:
                    await connection.exec_driver_sql("SELECT 1")
            else:
                await anyio.to_thread.run_sync(_ping, engine)
        except Exception as error:
            raise unavailable(url, error) from None

    async def stop(self) -> None:
        """Dispose of the engines: close every pooled connection."""
        replicas, sync_engine, async_engine = self._detach()
        if replicas is not None:
            await replicas.stop()
        if async_engine is not None:
            await async_engine.dispose()
        if sync_engine is not None:
            await anyio.to_thread.run_sync(sync_engine.dispose)

    def stop_sync(self) -> None:
        """`stop` for code without an event loop (scripts)."""
        replicas, sync_engine, async_engine = self._detach()
        if replicas is not None:
            replicas.stop_sync()
        if sync_engine is not None:
            sync_engine.dispose()
        if async_engine is not None:
            # Async connections belong to a loop that is gone: drop them without I/O.
            async_engine.sync_engine.dispose(close=False)

    def _detach(self) -> tuple[ReplicaSet | None, Engine | None, AsyncEngine | None]:
        """Mark the runtime stopped and take its engines (and replicas) for disposal."""
        self.started = False
        replicas = self._replicas
        if replicas is not None:
            self._replicas = ReplicaSet(self._config)
        self._stop_exporters()
        self.observer.unwatch()
        with self._lock:
            sync_engine, self._sync_engine = self._sync_engine, None
            async_engine, self._async_engine = self._async_engine, None
            self._sync_binds = {}
            self._async_binds = {}
        return replicas, sync_engine, async_engine

    def after_fork(self) -> None:
        if self._replicas is not None:
            self._replicas.after_fork()
        if self._sync_engine is not None:
            self._sync_engine.dispose(close=False)
        if self._async_engine is not None:
            self._async_engine.sync_engine.dispose(close=False)


BindKey = tuple[UnitMode, IsolationLevel | None, float | None]
"""What decides a unit's connection options: its mode, isolation level and statement timeout."""

MAX_KEPT_BINDS = 64
"""Option copies of an engine kept per flavour for reuse. Routes declare a handful; a
``statement_timeout`` computed per call (``db.transaction(statement_timeout=remaining)``)
would make one per value, so past this many a unit's copy is made for it and not kept."""


def _bind_key(unit: UnitNeeds) -> BindKey:
    return (unit.mode, unit.isolation, unit.statement_timeout)


def _with_options(engine: _E, url: URL, key: BindKey, *, pgbouncer: bool) -> _E:
    mode, isolation, statement_timeout = key
    options = connection_options(
        url.get_backend_name(),
        mode,
        isolation=isolation,
        statement_timeout=statement_timeout,
        pgbouncer=pgbouncer,
    )
    if not options:
        return engine
    # An option copy shares the engine's pool and dialect. The statement timeout's listener
    # goes on the copies that carry one: an engine with a connection-level listener makes
    # SQLAlchemy dispatch events on every statement of every connection.
    copy = engine.execution_options(**options)
    if STATEMENT_TIMEOUT_OPTION in options:
        install_statement_timeout(
            copy.sync_engine if isinstance(copy, AsyncEngine) else copy, url.get_backend_name()
        )
    return copy


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")


def unavailable(url: URL, error: BaseException) -> DatabaseUnavailableError:
    """The start-up error for a database that does not answer; no password in it."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    text = reason[0] if reason else type(error).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return DatabaseUnavailableError(
        f"cannot reach the database at {mask_url(url)}: {text}. Check that the server runs and "
        "that DATABASE_URL is right; set check_on_startup=False to start without it."
    )


async def acquire_slot(slots: ConnectionSlots, config: DatabaseConfig) -> float:
    """Wait up to ``pool_timeout`` for a connection slot; 503 with ``Retry-After`` after, or at
    once when the queue cannot drain in time (see `_slots`). Returns the seconds waited (0.0
    when a slot was free)."""
    return await slots.acquire(config.pool_timeout, config.retry_after)


# -- test bindings --------------------------------------------------------------------------

_bindings: weakref.WeakKeyDictionary[object, Binder] = weakref.WeakKeyDictionary()


def install_binding(owner: object, binder: Binder) -> None:
    """Route every unit of work of ``owner`` (a `Database`) to ``binder`` until removed."""
    _bindings[owner] = binder


def remove_binding(owner: object) -> None:
    _bindings.pop(owner, None)


def binding_of(owner: object) -> Binder | None:
    return _bindings.get(owner) if _bindings else None


# -- apps -----------------------------------------------------------------------------------

_ATTACHMENTS = "_sessionscope_attachments"


class Attachment:
    """One `Database` attached to one app: what the request boundary and the dependencies
    need to find where a request's unit of work runs."""

    __slots__ = (
        "__weakref__",
        "config",
        "default",
        "label",
        "owner",
        "runtime",
        "scope_key",
        "session_parameters",
    )

    def __init__(
        self,
        owner: object,
        *,
        config: DatabaseConfig,
        scope_key: str,
        label: str,
        default: bool,
        standalone: Runtime,
    ) -> None:
        self.owner = owner
        self.config = config
        self.scope_key = scope_key
        self.label = label
        self.default = default
        self.runtime: Runtime = standalone
        self.session_parameters: Any = None
        """The app's routes whose session parameter bypasses FastAPI's dependency solving
        (`hoist_session_parameters`), checked for overrides on each request."""
        """The app's own runtime while its lifespan runs; before and after, the database's
        runtime for use without an app (which serves requests only once started by hand)."""

    def binder(self) -> Binder:
        """Where a unit of work of this app runs now."""
        binding = binding_of(self.owner)
        if binding is not None:
            return binding
        runtime = self.runtime
        if not runtime.started:
            raise NotInitializedError(
                f"{self.label} has not started: run the app's lifespan "
                "(FastAPI(lifespan=db.lifespan) or db.init_app(app)). httpx.ASGITransport does "
                "not run it; use fastapi.testclient.TestClient as a context manager, or "
                "sessionscope.testing."
            )
        return runtime


def attachments_of(app: Any) -> list[Attachment]:
    """The databases attached to ``app``, first (the default one) first."""
    router = getattr(app, "router", None)
    found: list[Attachment] = getattr(router, "__dict__", {}).get(_ATTACHMENTS, [])
    return found


def add_attachment(app: Any, attachment: Attachment) -> None:
    router = app.router
    router.__dict__.setdefault(_ATTACHMENTS, []).append(attachment)
