"""SQLModel sessions: ``session.exec(select(Hero))`` on the request's session, typed.

::

    from sessionscope.sqlmodel import AsyncDbSession, DbSession

    @app.get("/heroes/")
    def read_heroes(session: DbSession) -> list[Hero]:
        return list(session.exec(select(Hero)))

`DbSession` and `AsyncDbSession` are annotated with SQLModel's ``Session`` and
``AsyncSession``, so ``exec`` type-checks; at run time the request's session is SQLModel's
with every sessionscope guard (ended-session, read-only, concurrent use). Outside requests,
`transaction` gives SQLModel sessions too; ``Database(url, session_class="sqlmodel")`` makes
every session of the database SQLModel's. Needs the extra ``sessionscope[sqlmodel]``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import Request

from ._database import Database
from ._dependencies import request_async_session, request_sync_session
from ._errors import MissingDriverError
from ._session_kinds import as_sqlmodel
from ._transaction import Transaction

try:
    from sqlmodel import Session
    from sqlmodel.ext.asyncio.session import AsyncSession
except ImportError as error:  # the extra is missing
    raise MissingDriverError(
        f"sessionscope.sqlmodel needs SQLModel ({error.name or error}); fix: "
        'pip install "sessionscope[sqlmodel]"'
    ) from None


async def get_session(request: Request) -> Session:
    """FastAPI dependency: the request's sync session as SQLModel's ``Session`` (first
    database attached to the app)."""
    session = await request_sync_session(request, None)
    as_sqlmodel(session)
    return cast(Session, session)


async def get_async_session(request: Request) -> AsyncSession:
    """FastAPI dependency: the request's session as SQLModel's ``AsyncSession``."""
    session = await request_async_session(request, None)
    as_sqlmodel(session)
    return cast(AsyncSession, session)


get_session.sessionscope_flavour = "sync"  # type: ignore[attr-defined]
get_async_session.sessionscope_flavour = "async"  # type: ignore[attr-defined]
# Read by the testing plugin: the test's own session is then SQLModel's too.
get_session.sessionscope_sqlmodel = True  # type: ignore[attr-defined]
get_async_session.sessionscope_sqlmodel = True  # type: ignore[attr-defined]

DbSession = Annotated[Session, Depends(get_session)]
"""The request's sync session, SQLModel's ``Session``, for ``def`` endpoints."""

AsyncDbSession = Annotated[AsyncSession, Depends(get_async_session)]
"""The request's session, SQLModel's ``AsyncSession``, for ``async def`` endpoints."""


class SQLModelTransaction:
    """`Database.transaction` whose session is SQLModel's (sync or async)."""

    __slots__ = ("_transaction",)

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    def __enter__(self) -> Session:
        session = self._transaction.__enter__()
        as_sqlmodel(session)
        return cast(Session, session)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._transaction.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> AsyncSession:
        session = await self._transaction.__aenter__()
        as_sqlmodel(session)
        return cast(AsyncSession, session)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._transaction.__aexit__(exc_type, exc, tb)


def transaction(db: Database, *, readonly: bool = False) -> SQLModelTransaction:
    """``db.transaction()`` with SQLModel's session: ``with transaction(db) as session:
    session.exec(...)`` (``async with`` for SQLModel's ``AsyncSession``)."""
    return SQLModelTransaction(db.transaction(readonly=readonly))


__all__ = [
    "AsyncDbSession",
    "DbSession",
    "SQLModelTransaction",
    "get_async_session",
    "get_session",
    "transaction",
]
