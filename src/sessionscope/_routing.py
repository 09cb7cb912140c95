"""What the request boundary does for a database with replicas: the response headers of a
unit of work (its bookmark, which database served it), and the second run on the primary of
a safe request whose replica failed before its response started."""

from __future__ import annotations

import logging

from sqlalchemy import exc as sa_exc
from starlette.types import Message, Receive, Scope, Send

from ._bookmarks import bookmark_headers
from ._config import DatabaseConfig
from ._errors import DatabaseBusyError
from ._unit import UnitOfWork

logger = logging.getLogger("sessionscope")

SAFE_METHODS = frozenset({"GET", "HEAD"})
"""Requests that `replica_reads="safe_methods"` sends to replicas, and that run again on the
primary when their replica fails: by HTTP's rules they change nothing."""


def served_by(unit: UnitOfWork) -> str:
    """``"primary"`` or the name of the replica that served ``unit``."""
    return unit.replica.name if unit.replica is not None else "primary"


def with_replica_headers(message: Message, unit: UnitOfWork, config: DatabaseConfig) -> Message:
    """``http.response.start`` with the unit's bookmark and, when configured, the name of the
    database that served it."""
    if logger.isEnabledFor(logging.DEBUG) and unit.active:
        name = served_by(unit)
        logger.debug("request served by %s", name, extra={"sessionscope_database": name})
    extra: list[tuple[bytes, bytes]] = []
    if unit.bookmark is not None:
        extra += bookmark_headers(unit.bookmark, config.bookmark_header, config.bookmark_cookie)
    if config.served_by_header is not None and unit.active:
        header = config.served_by_header.lower().encode("latin-1")
        extra.append((header, served_by(unit).encode("latin-1")))
    if not extra:
        return message
    return {**message, "headers": [*message.get("headers", ()), *extra]}


_DRIVERS = frozenset({"asyncpg", "psycopg"})


def _database_failure(error: BaseException) -> BaseException | None:
    """The database error behind ``error`` (raised as is, or turned into a 503): SQLAlchemy's,
    or what a driver raises unwrapped while it connects (asyncpg's own errors, a refused
    socket)."""
    if isinstance(error, DatabaseBusyError):
        error = error.__cause__ or error
    if isinstance(error, (sa_exc.SQLAlchemyError, OSError)):
        return error
    return error if type(error).__module__.partition(".")[0] in _DRIVERS else None


def should_retry_on_primary(unit: UnitOfWork, scope: Scope, error: BaseException) -> bool:
    """Whether a request that failed on its replica runs again on the primary: a GET or HEAD
    whose read-only unit ran on a replica and failed with a database error (the caller checks
    that no response has started)."""
    return (
        unit.replica is not None
        and scope["method"] in SAFE_METHODS
        and _database_failure(error) is not None
    )


def failure_name(error: BaseException) -> str:
    return type(_database_failure(error) or error).__name__


def replica_is_down(error: BaseException) -> bool:
    """Whether ``error`` says the replica itself failed (its connection, its server), rather
    than the statement: only then is the replica skipped until its monitor finds it back."""
    failure = _database_failure(error)
    if failure is None:
        return False
    if isinstance(failure, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    if isinstance(failure, sa_exc.DBAPIError):
        return failure.connection_invalidated or isinstance(
            failure, (sa_exc.OperationalError, sa_exc.InterfaceError)
        )
    # A driver's own error or a socket's, raised while connecting.
    return not isinstance(failure, sa_exc.SQLAlchemyError)


class ResponseWatch:
    """Wraps ``send`` to tell whether the response has started."""

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def empty_body_then(receive: Receive) -> Receive:
    """``receive`` for a second run of a bodiless request: its (empty) body again, then
    whatever the client sends next (a disconnect)."""
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return receive_again
