"""The fast path: statements on the unit of work's own driver connection (asyncpg, psycopg).

A hot route that needs no ORM asks for the driver connection instead of a session. It is the
connection of the request's unit of work, checked out through the same pool slot, with the
options `connection_options` decided (read-only units run without a transaction on
PostgreSQL, isolation level, statement timeout), inside the unit's transaction: the request
boundary commits it before the response starts, rolls it back on an error or a 4xx, maps the
driver's errors to 409 / 503 as it does SQLAlchemy's, and gives the connection back. What
the route holds is a proxy of the driver's connection that refuses every use once the unit
has ended.

Without an ORM session the unit holds an `AsyncConnection`: no identity map, no flush, no
session events. A route that has a session already gets the session's connection (same
transaction), so ORM and driver statements can be mixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar, cast

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.requests import Request

from ._dependencies import ENDED_REQUEST, Attached, _prepare, _unit_for
from ._errors import ConfigurationError, SessionClosedError, SessionScopeError
from ._sessions import ENDED_KEY
from ._tuning import STATEMENT_TIMEOUT_OPTION, set_local_statement_timeout
from ._unit import UnitOfWork

_D = TypeVar("_D")


class DriverConnection(Generic[_D]):
    """The driver's connection of a unit of work, refusing use after the unit ended.

    Attribute access is forwarded to the driver's connection (``fetchrow``, ``execute``,
    ``cursor``...) while the unit runs; afterwards every access raises `SessionClosedError`.
    `driver_connection` and `DriverDependency` hand it out typed as the driver's class.
    """

    __slots__ = ("_sessionscope_driver", "_sessionscope_unit")

    def __init__(self, driver: _D, unit: UnitOfWork) -> None:
        self._sessionscope_driver = driver
        self._sessionscope_unit = unit

    def __getattr__(self, name: str) -> Any:
        unit = self._sessionscope_unit
        if unit.ended:
            raise SessionClosedError(unit.ended_reason())
        return getattr(self._sessionscope_driver, name)

    def __repr__(self) -> str:
        state = "ended" if self._sessionscope_unit.ended else "active"
        return f"<DriverConnection of {self._sessionscope_driver!r} ({state})>"


def _check_kind(driver: object, kind: type[_D]) -> None:
    if not isinstance(driver, kind):
        raise ConfigurationError(
            f"the unit of work runs on a {type(driver).__module__}.{type(driver).__name__} "
            f"connection, not a {kind.__module__}.{kind.__qualname__}: ask for the class of "
            "the driver the database URL names (asyncpg.Connection for postgresql+asyncpg, "
            "psycopg.AsyncConnection for postgresql+psycopg)"
        )


_ASYNCPG_LEVELS = {
    "READ COMMITTED": "read_committed",
    "READ UNCOMMITTED": "read_uncommitted",
    "REPEATABLE READ": "repeatable_read",
    "SERIALIZABLE": "serializable",
}


def _is_asyncpg(driver: object) -> bool:
    return type(driver).__module__.partition(".")[0] == "asyncpg"


def _options(connection: AsyncConnection) -> Mapping[str, Any]:
    sync_connection = connection.sync_connection
    assert sync_connection is not None
    return sync_connection.get_execution_options()


async def begin_on_driver(connection: AsyncConnection, *, in_savepoint: bool) -> tuple[Any, Any]:
    """The driver connection under ``connection`` and, on asyncpg, the driver transaction
    begun for the unit (``None``: none, or SQLAlchemy's, which the unit ends).

    The connection's execution options, set by `connection_options`, decide: AUTOCOMMIT (a
    read-only unit on PostgreSQL) runs without a transaction; otherwise the transaction has
    the unit's isolation level, read-only flag and statement timeout.
    """
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    options = _options(connection)
    level = options.get("isolation_level")
    if in_savepoint or level == "AUTOCOMMIT":
        return driver, None
    if _is_asyncpg(driver):
        # SQLAlchemy's asyncpg adapter would send BEGIN only with its own first statement:
        # the unit begins asyncpg's transaction itself, and ends it (`UnitOfWork.end`).
        transaction = driver.transaction(
            isolation=_ASYNCPG_LEVELS.get(level) if isinstance(level, str) else None,
            readonly=bool(options.get("postgresql_readonly")),
            deferrable=bool(options.get("postgresql_deferrable")),
        )
        await transaction.start()
        seconds = options.get(STATEMENT_TIMEOUT_OPTION)
        if seconds:
            try:
                await driver.execute(set_local_statement_timeout(seconds))
            except BaseException:
                await transaction.rollback()
                raise
        return driver, transaction
    # psycopg begins with the first statement; SQLAlchemy's begin runs the "begin" listener
    # that sets the statement timeout, and its commit and rollback end psycopg's transaction.
    await connection.begin()
    return driver, None


async def driver_connection(session: AsyncSession, kind: type[_D]) -> _D:
    """The driver connection (an instance of ``kind``) of ``session``'s unit of work, inside
    its transaction: for a route or a ``db.transaction()`` block that mixes ORM and driver
    statements. Refused once the unit has ended.

    ``kind`` is the driver's connection class, ``asyncpg.Connection`` or
    ``psycopg.AsyncConnection``; the result is typed as it.
    """
    unit: UnitOfWork | None = session.sync_session.info.get("sessionscope.unit")
    if unit is None:
        raise SessionScopeError(
            "driver_connection() needs a sessionscope session (AsyncDbSession or "
            "`async with db.transaction() as session`)"
        )
    if session.sync_session.info.get(ENDED_KEY) or unit.ended:
        raise SessionClosedError(unit.ended_reason())
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if (
        _is_asyncpg(driver)
        and not driver.is_in_transaction()
        and _options(connection).get("isolation_level") != "AUTOCOMMIT"
    ):
        # SQLAlchemy's asyncpg adapter sends BEGIN with the session's first statement, and
        # ends that transaction itself: a statement through it starts it.
        await connection.exec_driver_sql("SELECT 1")
    _check_kind(driver, kind)
    return cast(_D, DriverConnection(driver, unit))


async def request_driver(request: Request, database: Attached | None, kind: type[Any]) -> Any:
    unit = _unit_for(request.scope, database)
    if unit.async_session is not None:
        return await driver_connection(unit.async_session, kind)
    if unit.driver is None:
        binder = await _prepare(unit, "async", request.scope)
        await unit.open_connection(binder, ENDED_REQUEST)
    assert unit.driver is not None
    _check_kind(unit.driver, kind)
    return unit.driver_proxy


class DriverDependency(Generic[_D]):
    """FastAPI dependency: the request's driver connection, of the class ``kind``::

        Pg = Annotated[asyncpg.Connection, Depends(DriverDependency(asyncpg.Connection))]

        @app.get("/items/{item_id}", dependencies=[unit_of_work(readonly=True)])
        async def read_item(item_id: int, connection: Pg) -> dict[str, Any]: ...

    ``database``: the database whose unit it is (default: the app's first).
    """

    def __init__(self, kind: type[_D], *, database: Attached | None = None) -> None:
        self.kind = kind
        self.database = database

    async def __call__(self, request: Request) -> _D:
        return cast(_D, await request_driver(request, self.database, self.kind))


def driver_dependency(kind: type[_D], *, database: Attached | None = None) -> Any:
    """``Depends(DriverDependency(kind))``, for ``Annotated[kind, driver_dependency(kind)]``."""
    return Depends(DriverDependency(kind, database=database))
