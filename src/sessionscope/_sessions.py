"""Session classes: a sync Session that refuses to outlive its unit of work, and an
AsyncSession that refuses concurrent use from two tasks."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from ._errors import ConcurrentSessionUseError, SessionClosedError, SessionScopeError

ENDED_KEY = "sessionscope.ended"
UNIT_KEY = "sessionscope.unit"

_T = TypeVar("_T")


class ScopedSession(Session):
    """A Session owned by a sessionscope unit of work.

    Once the unit has ended, starting a new transaction raises `SessionClosedError` instead
    of quietly checking out a fresh connection whose writes nobody would commit.
    """


@event.listens_for(ScopedSession, "after_transaction_create")
def _refuse_after_end(session: Session, transaction: SessionTransaction) -> None:
    reason = session.info.get(ENDED_KEY)
    if reason is not None and transaction.parent is None:
        raise SessionClosedError(reason)


def _exclusive(
    method: Callable[..., Coroutine[Any, Any, _T]],
) -> Callable[..., Coroutine[Any, Any, _T]]:
    @functools.wraps(method)
    async def guarded(self: ScopedAsyncSession, *args: Any, **kwargs: Any) -> _T:
        task = asyncio.current_task()
        owner = self._sessionscope_owner
        if owner is task:
            # scalars() calls execute(): the same task may re-enter.
            return await method(self, *args, **kwargs)
        if owner is not None:
            raise ConcurrentSessionUseError(
                f"AsyncSession.{method.__name__}() was called while another task is using the "
                "same session; an AsyncSession serves one task at a time. For parallel queries "
                "give each task its own session: `await db.gather(...)` or "
                "`async with db.transaction() as session` inside each task."
            )
        self._sessionscope_owner = task
        try:
            return await method(self, *args, **kwargs)
        finally:
            self._sessionscope_owner = None

    return guarded


class ScopedAsyncSession(AsyncSession):
    """An AsyncSession that fails at once, with a clear message, when two tasks use it
    concurrently (plain AsyncSession fails only sometimes, depending on pool warmth)."""

    sync_session_class = ScopedSession
    _sessionscope_owner: asyncio.Task[Any] | None = None

    execute = _exclusive(AsyncSession.execute)
    scalar = _exclusive(AsyncSession.scalar)
    scalars = _exclusive(AsyncSession.scalars)
    get = _exclusive(AsyncSession.get)
    get_one = _exclusive(AsyncSession.get_one)
    stream = _exclusive(AsyncSession.stream)
    stream_scalars = _exclusive(AsyncSession.stream_scalars)
    delete = _exclusive(AsyncSession.delete)
    merge = _exclusive(AsyncSession.merge)
    flush = _exclusive(AsyncSession.flush)
    refresh = _exclusive(AsyncSession.refresh)
    commit = _exclusive(AsyncSession.commit)
    rollback = _exclusive(AsyncSession.rollback)
    connection = _exclusive(AsyncSession.connection)
    run_sync = _exclusive(AsyncSession.run_sync)


_READONLY_REFUSAL = (
    "this route is read-only (unit_of_work(readonly=True)) and its session refuses writes; "
    "drop readonly=True from the route, or write in a `db.transaction()` block"
)


class ReadOnlySession(ScopedSession):
    """The session of a read-only unit of work: flushes and DML statements raise."""


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise SessionScopeError(_READONLY_REFUSAL)


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise SessionScopeError(_READONLY_REFUSAL)


class ReadOnlyAsyncSession(ScopedAsyncSession):
    """`ScopedAsyncSession` of a read-only unit of work."""

    sync_session_class = ReadOnlySession


def has_pending_work(session: Session) -> bool:
    """Whether ending this session's unit of work needs a round trip to the database."""
    return session.in_transaction() or bool(session.new or session.dirty or session.deleted)
