"""Session classes: sessions that refuse to outlive their unit of work, and an AsyncSession
that refuses concurrent use from two tasks.

Both guards are derived from SQLAlchemy's classes, not listed by hand, so a method that a
later SQLAlchemy adds is guarded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ._errors import ConcurrentSessionUseError, SessionClosedError, SessionScopeError
from ._reconnect import RECONNECT_KEY, connection_taken, run_first_use

ENDED_KEY = "sessionscope.ended"
UNIT_KEY = "sessionscope.unit"

ALLOWED_AFTER_END = frozenset(
    {
        # Ending again is harmless (and closing calls expunge_all), and so is asking whether
        # a transaction is open.
        "close",
        "expunge_all",
        "aclose",
        "reset",
        "invalidate",
        "in_transaction",
        "in_nested_transaction",
        "get_transaction",
        "get_nested_transaction",
    }
)
"""Public methods an ended session still answers; every other one raises `SessionClosedError`."""

NOT_EXCLUSIVE = frozenset({"close", "aclose", "reset", "invalidate"})
"""AsyncSession coroutine methods that never fail for another task's use: ending a unit of
work must always be possible. They wait for that task's operation in progress to finish."""

_T = TypeVar("_T")


def is_coroutine_method(method: object) -> bool:
    """Whether ``method`` is a coroutine function, also under a decorator that hides it
    (``typing_extensions.deprecated`` on Python < 3.12, as SQLModel's ``execute`` has)."""
    return inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(
        inspect.unwrap(method)  # type: ignore[arg-type]
    )


def public_methods(cls: type) -> list[str]:
    """The public instance methods of ``cls`` (class and static methods left out)."""
    names = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        if inspect.isfunction(inspect.getattr_static(cls, name)):
            names.append(name)
    return names


class ScopedSession(Session):
    """A Session owned by a sessionscope unit of work.

    Its first database operation may run again on a fresh connection (`_reconnect`): the
    three methods that run statements (``get``, lazy loads and refreshes go through
    ``execute``) and ``flush`` look for that, not a ``do_orm_execute`` listener, which would
    make SQLAlchemy build an `ORMExecuteState` for every statement."""

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if RECONNECT_KEY in self.info:
            return run_first_use(
                self, lambda: super(ScopedSession, self).execute(statement, *args, **kwargs)
            )
        return super().execute(statement, *args, **kwargs)

    def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if RECONNECT_KEY in self.info:
            return run_first_use(
                self, lambda: super(ScopedSession, self).scalar(statement, *args, **kwargs)
            )
        return super().scalar(statement, *args, **kwargs)

    def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if RECONNECT_KEY in self.info:
            return run_first_use(
                self, lambda: super(ScopedSession, self).scalars(statement, *args, **kwargs)
            )
        return super().scalars(statement, *args, **kwargs)

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        if RECONNECT_KEY in self.info and self.new:
            # The unit's first statement may be this flush's INSERT: see `_reconnect`.
            run_first_use(self, lambda: super(ScopedSession, self).flush(objects))
        else:
            super().flush(objects)


event.listen(ScopedSession, "after_begin", connection_taken)


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
        if owner is not None or self._sessionscope_closer not in (None, task):
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
            released = self._sessionscope_released
            if released is not None:
                self._sessionscope_released = None
                if not released.done():
                    released.set_result(None)

    guarded.__sessionscope_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _after_other_task(
    method: Callable[..., Coroutine[Any, Any, _T]],
) -> Callable[..., Coroutine[Any, Any, _T]]:
    """Ending methods wait for another task's operation in progress, then run.

    ``asyncio.gather`` without ``return_exceptions`` returns the first task's
    `ConcurrentSessionUseError` while the other task's query still runs; closing the session
    under that query would replace our error with SQLAlchemy's ``IllegalStateChangeError``
    and leave the connection checked out. Meanwhile no other task may start an operation.
    """

    @functools.wraps(method)
    async def guarded(self: ScopedAsyncSession, *args: Any, **kwargs: Any) -> _T:
        owner = self._sessionscope_owner
        if owner is None or owner is asyncio.current_task():
            return await method(self, *args, **kwargs)
        async with _Ending(self):
            return await method(self, *args, **kwargs)

    guarded.__sessionscope_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def ending(session: AsyncSession) -> contextlib.AbstractAsyncContextManager[None]:
    """Wait until no other task runs an operation on ``session``, and let none start one
    until the block ends: the block (a unit of work's commit and close) has it to itself."""
    if isinstance(session, ScopedAsyncSession):
        return _Ending(session)
    return contextlib.nullcontext()


class _Ending:
    """`ending` as a plain object: it runs at the end of every request's unit of work, where
    a generator-based context manager would cost a generator and its wrapper each time."""

    __slots__ = ("_closes", "_session")

    def __init__(self, session: ScopedAsyncSession) -> None:
        self._session = session
        self._closes = False

    async def __aenter__(self) -> None:
        session = self._session
        if session._sessionscope_closer is not None:
            return
        task = asyncio.current_task()
        session._sessionscope_set_closer(task)
        self._closes = True
        try:
            while session._sessionscope_owner not in (None, task):
                released = session._sessionscope_released
                if released is None:
                    released = asyncio.get_running_loop().create_future()
                    session._sessionscope_released = released
                await released
        except BaseException:
            session._sessionscope_set_closer(None)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        if self._closes:
            self._session._sessionscope_set_closer(None)


def guard_async_methods(cls: type[AsyncSession]) -> None:
    """Make every public coroutine method of ``cls`` (SQLAlchemy's, and those a subclass such
    as SQLModel's adds) exclusive to one task at a time; the ending ones wait their turn."""
    for name in public_methods(cls):
        method = getattr(cls, name)
        if not is_coroutine_method(method):
            continue
        if getattr(method, "__sessionscope_guarded__", False):
            continue
        wrap = _after_other_task if name in NOT_EXCLUSIVE else _exclusive
        setattr(cls, name, wrap(method))


class ScopedAsyncSession(AsyncSession):
    """An AsyncSession that fails at once, with a clear message, when two tasks use it
    concurrently (plain AsyncSession fails only sometimes, depending on pool warmth)."""

    sync_session_class = ScopedSession
    _sessionscope_owner: asyncio.Task[Any] | None = None
    _sessionscope_closer: asyncio.Task[Any] | None = None
    _sessionscope_released: asyncio.Future[None] | None = None

    def _sessionscope_set_closer(self, task: asyncio.Task[Any] | None) -> None:
        """Record the task ending the session (``None``: none); see `ending`."""
        self._sessionscope_closer = task


guard_async_methods(ScopedAsyncSession)


_READONLY_REFUSAL = (
    "this unit of work is read-only (unit_of_work(readonly=True) or "
    "db.transaction(readonly=True)) and its session refuses writes; drop readonly=True, or "
    "write in a `db.transaction()` block"
)


class ReadOnlySession(ScopedSession):
    """The session of a read-only unit of work: flushes and DML statements raise.

    The statement check sits in the three methods that run statements, not in a
    ``do_orm_execute`` listener: with a listener, SQLAlchemy builds an `ORMExecuteState`
    for every statement of every read-only request, the ones that only read included."""

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse_dml(statement)
        return super().execute(statement, *args, **kwargs)

    def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse_dml(statement)
        return super().scalar(statement, *args, **kwargs)

    def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse_dml(statement)
        return super().scalars(statement, *args, **kwargs)


def _refuse_dml(statement: Any) -> None:
    # INSERT, UPDATE and DELETE constructs (ORM-enabled or not); text() is not inspected.
    if getattr(statement, "is_dml", False):
        raise SessionScopeError(_READONLY_REFUSAL)


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise SessionScopeError(_READONLY_REFUSAL)


class ReadOnlyAsyncSession(ScopedAsyncSession):
    """`ScopedAsyncSession` of a read-only unit of work."""

    sync_session_class = ReadOnlySession


# -- ended sessions -------------------------------------------------------------------------


def _ended_reason(session: Any) -> str:
    info = session.sync_session.info if isinstance(session, AsyncSession) else session.info
    reason: str = info.get(ENDED_KEY) or "this session's unit of work has ended"
    return reason


def _refuse_sync(name: str) -> Callable[..., NoReturn]:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise SessionClosedError(_ended_reason(self))

    refuse.__name__ = name
    return refuse


def _refuse_async(name: str) -> Callable[..., Coroutine[Any, Any, NoReturn]]:
    async def refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise SessionClosedError(_ended_reason(self))

    refuse.__name__ = name
    return refuse


_ended_classes: dict[type[Any], type[Any]] = {}


def _ended_class(cls: type[Any]) -> type[Any]:
    """A subclass of ``cls`` whose public methods, but `ALLOWED_AFTER_END`, raise."""
    ended = _ended_classes.get(cls)
    if ended is None:
        ended = _ended_classes[cls] = _make_ended_class(cls)
    return ended


def _make_ended_class(cls: type[Any]) -> type[Any]:
    namespace: dict[str, Any] = {"__module__": __name__}
    for name in public_methods(cls):
        if name in ALLOWED_AFTER_END:
            continue
        original = getattr(cls, name)
        namespace[name] = (
            _refuse_async(name) if is_coroutine_method(original) else _refuse_sync(name)
        )
    return type(f"Ended{cls.__name__}", (cls,), namespace)


def seal(session: Session | AsyncSession, reason: str) -> None:
    """Make ``session`` refuse every further use with `SessionClosedError` (``reason``).

    Swapping the class costs nothing while the unit of work runs: no wrapper on any call.
    """
    if isinstance(session, AsyncSession):
        session.sync_session.info[ENDED_KEY] = reason
        session.__class__ = _ended_class(type(session))
        session.sync_session.__class__ = _ended_class(type(session.sync_session))
    else:
        session.info[ENDED_KEY] = reason
        session.__class__ = _ended_class(type(session))


def has_pending_work(session: Session) -> bool:
    """Whether ending this session's unit of work needs a round trip to the database."""
    return session.in_transaction() or bool(session.new or session.dirty or session.deleted)
