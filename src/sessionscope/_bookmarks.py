"""Bookmarks: the primary's WAL position after a commit, carried by the client.

A unit of work that commits on the primary reads ``pg_current_wal_lsn()`` on the same
connection right after its COMMIT (before the response starts); the response carries it in a
header (and, optionally, a cookie). A later request that presents it is served by a replica
only once that replica has replayed at least that far: the client reads its own writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, SessionTransaction

from ._sessions import ScopedAsyncSession, ScopedSession

logger = logging.getLogger("sessionscope")

BOOKMARK_KEY = "sessionscope.bookmark"
_CONNECTION_KEY = "sessionscope.bookmark_connection"

UNREADABLE = (1 << 64) - 1
"""The position of a bookmark that cannot be read: no replica ever reaches it, so a request
that presents one is served by the primary."""


def parse_lsn(text: str) -> int | None:
    """A PostgreSQL LSN (``"16/B374D848"``) as a number; ``None`` when ``text`` is not one."""
    high, slash, low = text.strip().partition("/")
    if not slash or not (0 < len(high) <= 8 and 0 < len(low) <= 8):
        return None
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        return None


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def presented_bookmark(
    headers: Iterable[tuple[bytes, bytes]], header: bytes, cookie: str | None
) -> int:
    """The WAL position a request's bookmark asks for (``0``: none presented). A malformed one
    asks for the primary."""
    found: str | None = None
    cookie_header: bytes | None = None
    for name, value in headers:
        if name == header:
            found = value.decode("latin-1")
        elif cookie is not None and name == b"cookie":
            cookie_header = value
    if found is None and cookie_header is not None:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header.decode("latin-1"))
        except Exception:  # a malformed Cookie header: no bookmark in it
            return 0
        morsel = jar.get(cookie or "")
        found = morsel.value if morsel is not None else None
    if found is None:
        return 0
    position = parse_lsn(found)
    return UNREADABLE if position is None else position


def bookmark_headers(bookmark: str, header: str, cookie: str | None) -> list[tuple[bytes, bytes]]:
    """The response headers that hand a bookmark to the client."""
    headers = [(header.lower().encode("latin-1"), bookmark.encode("latin-1"))]
    if cookie is not None:
        value = f"{cookie}={bookmark}; Path=/; SameSite=Lax; HttpOnly"
        headers.append((b"set-cookie", value.encode("latin-1")))
    return headers


def bookmark_of(session: Session) -> str | None:
    """The bookmark of the last commit of ``session`` (``None``: it committed nothing)."""
    bookmark: str | None = session.info.get(BOOKMARK_KEY)
    return bookmark


class BookmarkSession(ScopedSession):
    """The session of a writing unit of work of a database with replicas: after its COMMIT it
    reads the primary's WAL position, on the same connection."""


class BookmarkAsyncSession(ScopedAsyncSession):
    """`BookmarkSession` for async units."""

    sync_session_class = BookmarkSession


@event.listens_for(BookmarkSession, "after_begin")
def _remember_connection(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    session.info[_CONNECTION_KEY] = connection


@event.listens_for(BookmarkSession, "after_commit")
def _read_bookmark(session: Session) -> None:
    connection: Any = session.info.pop(_CONNECTION_KEY, None)
    if connection is None or connection.closed or connection.in_transaction():
        # A SAVEPOINT released inside a transaction that goes on (a test's outer one): the
        # data is not committed yet, so there is no position to hand out.
        return
    try:
        # Autocommit for this one statement: no BEGIN/ROLLBACK around it. The pool restores
        # the connection's isolation level when it is returned.
        connection.execution_options(isolation_level="AUTOCOMMIT")
        position = connection.exec_driver_sql("SELECT pg_current_wal_insert_lsn()::text").scalar()
    except Exception as error:
        # The write is committed; without its position the next request must not read from
        # a replica that may lack it.
        logger.warning(
            "could not read the WAL position after COMMIT (%s); the bookmark sends the next "
            "request to the primary",
            type(error).__name__,
        )
        position = format_lsn(UNREADABLE)
    session.info[BOOKMARK_KEY] = str(position)
