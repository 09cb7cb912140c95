"""Which classes a unit of work's sessions are: SQLAlchemy's, or SQLModel's with the same
guards; read-only ones, or ones that read a bookmark after their COMMIT (writing units of a
database with replicas).

sessionscope's guards (the read-only refusals, the ended-session and concurrency guards) are
derived from the classes, so SQLModel's ``Session`` and ``AsyncSession`` get them the same way:
each SQLModel class is combined with sessionscope's, and the public coroutine methods SQLModel
adds (``exec``) are made exclusive to one task like SQLAlchemy's.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ._bookmarks import BookmarkAsyncSession, BookmarkSession
from ._config import SessionClass
from ._errors import MissingDriverError
from ._sessions import (
    ENDED_KEY,
    ReadOnlyAsyncSession,
    ReadOnlySession,
    ScopedAsyncSession,
    ScopedSession,
    guard_async_methods,
)

SessionKind = tuple[bool, bool]
"""(read-only, reads a bookmark after COMMIT)."""

_SQLALCHEMY: dict[SessionKind, tuple[type[Session], type[AsyncSession]]] = {
    (False, False): (ScopedSession, ScopedAsyncSession),
    (True, False): (ReadOnlySession, ReadOnlyAsyncSession),
    (False, True): (BookmarkSession, BookmarkAsyncSession),
}


def session_classes(
    kind: SessionClass, *, readonly: bool, bookmark: bool = False
) -> tuple[type[Session], type[AsyncSession]]:
    """The (sync, async) session classes of a unit of work. ``bookmark``: the unit writes
    to a database with replicas, and its session reads the primary's WAL position after its
    COMMIT (a read-only unit has no COMMIT to follow)."""
    key = (readonly, bookmark and not readonly)
    if kind == "sqlmodel":
        return _sqlmodel_classes(key)
    return _SQLALCHEMY[key]


def _import_sqlmodel() -> tuple[type[Session], type[AsyncSession]]:
    try:
        from sqlmodel import Session as SQLModelSession
        from sqlmodel.ext.asyncio.session import AsyncSession as SQLModelAsyncSession
    except ImportError as error:
        raise MissingDriverError(
            "SQLModel sessions need SQLModel, which is not installed "
            f'({error.name or error}); fix: pip install "sessionscope[sqlmodel]"'
        ) from None
    return SQLModelSession, SQLModelAsyncSession


@functools.cache
def _sqlmodel_classes(key: SessionKind) -> tuple[type[Session], type[AsyncSession]]:
    sqlmodel_sync, sqlmodel_async = _import_sqlmodel()
    ours_sync, ours_async = _SQLALCHEMY[key]
    readonly, bookmark = key
    prefix = "SQLModel" + ("ReadOnly" if readonly else "Bookmark" if bookmark else "Scoped")
    sync_class: type[Session] = type(
        f"{prefix}Session", (sqlmodel_sync, ours_sync), {"__module__": __name__}
    )
    async_class: type[AsyncSession] = type(
        f"{prefix}AsyncSession",
        (sqlmodel_async, ours_async),
        {"__module__": __name__, "sync_session_class": sync_class},
    )
    guard_async_methods(async_class)
    return sync_class, async_class


def as_sqlmodel(session: Any) -> None:
    """Make an open session of a unit of work SQLModel's (in place: SQLModel's classes add
    methods, no state), so that a route asking for SQLModel's session gets one even when
    another dependency of the request opened it first."""
    sync_session = session.sync_session if isinstance(session, AsyncSession) else session
    if ENDED_KEY in sync_session.info:
        return  # sealed: its class refuses every use, and must keep doing so
    readonly = isinstance(session, (ReadOnlySession, ReadOnlyAsyncSession))
    bookmark = isinstance(session, (BookmarkSession, BookmarkAsyncSession))
    sync_class, async_class = _sqlmodel_classes((readonly, bookmark))
    if isinstance(session, AsyncSession):
        if not isinstance(session, async_class):
            session.__class__ = async_class
            session.sync_session.__class__ = sync_class
    elif not isinstance(session, sync_class):
        session.__class__ = sync_class
