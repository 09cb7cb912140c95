"""Engine creation: driver pairs, per-backend defaults, the SQLite recipe and idle pings."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, PoolResetState, StaticPool
from sqlalchemy.util import get_cls_kwargs

from ._config import DatabaseConfig
from ._errors import ConfigurationError, MissingDriverError
from ._pgbouncer import pgbouncer_connect_args
from ._pool import AsyncKeepWarmQueuePool, KeepWarmQueuePool
from ._urls import DRIVER_PAIRS, missing_driver_message, normalize_url

_ASYNC_DRIVERS = frozenset({"aiosqlite", "asyncpg", "aiomysql", "asyncmy", "psycopg_async"})

SQLITE_BEGIN_OPTION = "sessionscope_sqlite_begin"
"""Execution option read by the SQLite ``begin`` hook: ``"IMMEDIATE"`` takes the write lock
at BEGIN, so concurrent read-modify-write units queue instead of losing updates."""

_CHECKIN_TIME = "sessionscope_checkin"


def mask_url(url: str | URL) -> str:
    """The URL as text with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<unparseable URL>"


def parse_url(url: str | URL) -> URL:
    """The URL sessionscope serves for ``url`` (see `normalize_url`); a `ConfigurationError`
    naming the URL forms when it cannot."""
    try:
        return normalize_url(make_url(url))
    except sa_exc.ArgumentError:
        raise ConfigurationError(
            f"cannot parse the database URL {mask_url(url)!r}; expected "
            "'dialect+driver://user:password@host/dbname', e.g. 'postgresql+asyncpg://...' "
            "or 'sqlite:///./app.db'"
        ) from None


def is_async_url(url: URL) -> bool:
    return url.get_driver_name() in _ASYNC_DRIVERS


def flavour_urls(config: DatabaseConfig) -> tuple[URL, URL]:
    """The (sync, async) URLs of a configuration, the missing one derived from the other."""
    url = parse_url(config.url)
    backend = url.get_backend_name()
    pair = DRIVER_PAIRS.get(backend)
    if config.sync_url is not None:
        sync_url = parse_url(config.sync_url)
    elif not is_async_url(url):
        sync_url = url
    elif pair is not None:
        sync_url = url.set(drivername=f"{backend}+{pair[0]}")
    else:
        sync_url = url
    if config.async_url is not None:
        async_url = parse_url(config.async_url)
    elif is_async_url(url):
        async_url = url
    elif pair is not None:
        async_url = url.set(drivername=f"{backend}+{pair[1]}")
    else:
        async_url = url
    return sync_url, async_url


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def pool_capacity(config: DatabaseConfig, url: URL) -> int | None:
    """How many connections the pool hands out at once; ``None`` when it sets no limit."""
    if is_sqlite_memory(url):
        return 1
    if config.engine_options.get("poolclass") is not None:
        return None
    if config.max_overflow < 0:
        return None
    return config.pool_size + config.max_overflow


def _engine_kwargs(
    config: DatabaseConfig, url: URL, *, is_async: bool
) -> tuple[URL, dict[str, Any]]:
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {
        "echo": config.echo,
        "hide_parameters": config.hide_parameters,
        "pool_pre_ping": config.ping_after_idle == 0,
    }
    if backend == "sqlite":
        connect_args: dict[str, Any] = {"check_same_thread": False}
        if is_sqlite_memory(url):
            kwargs["poolclass"] = StaticPool
        else:
            kwargs.update(pool_size=config.pool_size, max_overflow=config.max_overflow)
            kwargs["pool_timeout"] = config.pool_timeout
        kwargs["connect_args"] = connect_args
    else:
        kwargs.update(
            pool_size=config.pool_size,
            max_overflow=config.max_overflow,
            pool_timeout=config.pool_timeout,
        )
    if backend in ("mysql", "mariadb"):
        kwargs["pool_recycle"] = 3600 if config.pool_recycle is None else config.pool_recycle
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
    elif config.pool_recycle is not None:
        kwargs["pool_recycle"] = config.pool_recycle
    keep_warm = (
        config.overflow_idle_timeout > 0
        and config.max_overflow != 0
        and "pool_size" in kwargs
        and not {"pool", "poolclass"} & config.engine_options.keys()
    )
    if keep_warm:
        kwargs["poolclass"] = AsyncKeepWarmQueuePool if is_async else KeepWarmQueuePool
        kwargs["overflow_idle_timeout"] = config.overflow_idle_timeout
    _drop_unaccepted_pool_options(kwargs, config.engine_options)
    kwargs.update(config.engine_options)
    if config.pgbouncer and backend == "postgresql":
        # The user's connect_args win, key by key.
        kwargs["connect_args"] = {
            **pgbouncer_connect_args(url),
            **config.engine_options.get("connect_args", {}),
        }
    return url, kwargs


# create_engine keyword -> the pool constructor's name for it
_POOL_SIZING = {"pool_size": "pool_size", "max_overflow": "max_overflow", "pool_timeout": "timeout"}
_POOL_OPTIONS = ("pool_pre_ping", "pool_recycle", *_POOL_SIZING)


def _drop_unaccepted_pool_options(kwargs: dict[str, Any], options: Mapping[str, Any]) -> None:
    """Leave out sizing defaults that the user's own pool cannot take (``NullPool`` has no
    size; a ready ``pool`` takes none): create_engine refuses unknown keywords."""
    if options.get("pool") is not None:
        for key in _POOL_OPTIONS:
            kwargs.pop(key, None)
        return
    poolclass = options.get("poolclass")
    if poolclass is not None:
        accepted = get_cls_kwargs(poolclass)
        for key, name in _POOL_SIZING.items():
            if name not in accepted:
                kwargs.pop(key, None)


def _missing_driver(url: URL, error: ImportError) -> MissingDriverError:
    return MissingDriverError(missing_driver_message(url, str(error.name or error)))


def _refused_options(url: URL, error: Exception) -> ConfigurationError:
    return ConfigurationError(
        f"SQLAlchemy refused the engine options for {mask_url(url)}: {error}. Check "
        "engine_options and the pool settings (a pool class without a size takes no "
        "pool_size / max_overflow / pool_timeout)."
    )


def create_sync_engine(config: DatabaseConfig, url: URL) -> Engine:
    url, kwargs = _engine_kwargs(config, url, is_async=False)
    try:
        engine = create_engine(url, **kwargs)
    except ImportError as error:
        raise _missing_driver(url, error) from None
    except (TypeError, sa_exc.ArgumentError) as error:
        raise _refused_options(url, error) from None
    _install_hooks(engine, config, url)
    return engine


def create_async_db_engine(config: DatabaseConfig, url: URL) -> AsyncEngine:
    not_async = ConfigurationError(
        f"{mask_url(url)} is not an async driver; name one in async_url "
        "(e.g. 'postgresql+asyncpg://', 'mysql+aiomysql://', 'sqlite+aiosqlite://')"
    )
    try:
        dialect_is_async = url.get_dialect(_is_async=True).is_async
    except sa_exc.NoSuchModuleError as error:
        raise ConfigurationError(f"unknown database driver in {mask_url(url)}: {error}") from None
    if not dialect_is_async:
        raise not_async
    url, kwargs = _engine_kwargs(config, url, is_async=True)
    try:
        engine = create_async_engine(url, **kwargs)
    except ImportError as error:
        raise _missing_driver(url, error) from None
    except sa_exc.InvalidRequestError as error:
        raise not_async from error
    except (TypeError, sa_exc.ArgumentError) as error:
        raise _refused_options(url, error) from None
    _install_hooks(engine.sync_engine, config, url)
    return engine


def _install_hooks(engine: Engine, config: DatabaseConfig, url: URL) -> None:
    if url.get_backend_name() == "sqlite":
        _install_sqlite_recipe(engine, config, memory=is_sqlite_memory(url))
    if config.ping_after_idle:
        _install_idle_ping(engine, config.ping_after_idle)


def _install_sqlite_recipe(engine: Engine, config: DatabaseConfig, *, memory: bool) -> None:
    busy_ms = int(config.sqlite_busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the driver: it would not BEGIN before a SELECT
        # (read-modify-write loses updates) and breaks SAVEPOINT. SQLAlchemy's documented recipe.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    @event.listens_for(engine, "reset")
    def _on_reset(
        dbapi_connection: Any, _record: ConnectionPoolEntry, state: PoolResetState
    ) -> None:
        # A COMMIT refused by a deferred foreign key leaves SQLite's transaction open, but
        # SQLAlchemy treats a failed COMMIT as the end of the transaction and skips its
        # rollback-on-return: the connection would go back to the pool still holding the
        # write lock, and every later writer would fail with "database is locked".
        if not (state.transaction_was_reset and state.asyncio_safe):
            return
        driver_connection = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        if driver_connection.in_transaction:
            dbapi_connection.rollback()


def _install_idle_ping(engine: Engine, idle_seconds: float) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKIN_TIME] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        checked_in = record.info.get(_CHECKIN_TIME)
        if checked_in is None or time.monotonic() - checked_in < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool invalidates this connection and checks out a fresh one.
            raise sa_exc.DisconnectionError("stale pooled connection replaced") from error
