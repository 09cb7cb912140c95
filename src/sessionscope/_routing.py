"""What the request boundary does for a database with replicas: the response headers of a
unit of work (its bookmark, which database served it), and the second run on the primary of
a safe request whose replica failed before its response started."""

from __future__ import annotations

import logging

from starlette.types import Message, Receive, Scope

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


def should_retry_on_primary(unit: UnitOfWork, scope: Scope, error: DatabaseBusyError) -> bool:
    """Whether a request answered 503 because its replica failed runs again on the primary:
    a GET or HEAD whose read-only unit ran on a replica (a 503 raised before the response
    started, for a database failure)."""
    return (
        unit.replica is not None
        and scope["method"] in SAFE_METHODS
        and error.__cause__ is not None
        and not isinstance(error.__cause__, DatabaseBusyError)
    )


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
