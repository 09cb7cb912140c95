"""`Transaction`: the unit of work of ``db.transaction()``, for code outside requests."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ._config import DatabaseConfig
from ._errors import SessionScopeError
from ._retry import Attempt, async_attempts, attempts
from ._runtime import Binder, Runtime
from ._tuning import IsolationLevel, check_isolation, check_retries, check_statement_timeout
from ._unit import UnitOfWork, check_not_on_event_loop, current_unit

_P = ParamSpec("_P")
_T = TypeVar("_T")

_ENDED_TRANSACTION = (
    "this session belongs to a `db.transaction()` block that has ended; open a new block "
    "for more work"
)


class Transaction:
    """The context manager returned by `Database.transaction`; sync or async.

    The block commits when it exits normally and rolls back when it raises. A read-only block
    refuses writes and ends without a COMMIT; its `after_commit` callbacks run when it exits
    normally, as they do for a read-only request.

    With ``retries``, it is not entered itself: iterating it gives the `Attempt` blocks of a
    retried transaction, and calling it decorates a function that takes the session.
    """

    __slots__ = (
        "_config",
        "_isolation",
        "_locate",
        "_owner",
        "_primary",
        "_readonly",
        "_retries",
        "_statement_timeout",
        "_token",
        "_unit",
    )

    def __init__(
        self,
        owner: object,
        config: DatabaseConfig,
        locate: Callable[[], Binder],
        *,
        readonly: bool,
        primary: bool = False,
        isolation: IsolationLevel | None = None,
        statement_timeout: float | None = None,
        retries: int = 0,
    ) -> None:
        self._owner = owner
        self._primary = primary
        self._config = config
        self._locate = locate
        self._readonly = readonly
        self._isolation = check_isolation(isolation)
        self._statement_timeout = check_statement_timeout(statement_timeout)
        self._retries = check_retries(retries)
        self._unit: UnitOfWork | None = None
        self._token: Any = None

    def _attempt_block(self) -> Transaction:
        return Transaction(
            self._owner,
            self._config,
            self._locate,
            readonly=self._readonly,
            primary=self._primary,
            isolation=self._isolation,
            statement_timeout=self._statement_timeout,
        )

    def __iter__(self) -> Iterator[Attempt[Session]]:
        """The attempts of a retried block: ``for attempt in db.transaction(retries=3):``
        then ``with attempt as session:``. The block runs again, whole, after a retryable
        failure (serialization failure, deadlock) of a statement or of the COMMIT."""
        return attempts(
            self._attempt_block, self._retries, lock_timeouts=self._config.retry_lock_timeouts
        )

    def __aiter__(self) -> AsyncIterator[Attempt[AsyncSession]]:
        """`__iter__` for ``async for attempt in ...: async with attempt as session:``."""
        return async_attempts(
            self._attempt_block, self._retries, lock_timeouts=self._config.retry_lock_timeouts
        )

    @overload
    def __call__(
        self, function: Callable[Concatenate[AsyncSession, _P], Awaitable[_T]]
    ) -> Callable[_P, Coroutine[Any, Any, _T]]: ...

    @overload
    def __call__(self, function: Callable[Concatenate[Session, _P], _T]) -> Callable[_P, _T]: ...

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a function whose first parameter is the session: each call runs it in a
        new transaction of these options, run again whole on a retryable failure."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async for attempt in self:
                    async with attempt as session:
                        result = await function(session, *args, **kwargs)
                # The loop ends after the attempt that committed; the last one raises.
                return result

            return run_async

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            for attempt in self:
                with attempt as session:
                    result = function(session, *args, **kwargs)
            return result

        return run

    def _open(self) -> tuple[UnitOfWork, Binder]:
        if self._unit is not None:
            raise RuntimeError(
                "a Transaction block cannot be entered twice; call db.transaction() again"
            )
        if self._retries:
            raise SessionScopeError(
                "a `with` block cannot run itself again: a transaction with retries runs as "
                "`for attempt in db.transaction(retries=N):` + `with attempt as session:` "
                "(`async for` / `async with` in async code), or decorates a function that "
                "takes the session: `@db.transaction(retries=N)`"
            )
        binder = self._locate()
        unit = UnitOfWork(
            self._owner,
            self._config,
            mode="readonly" if self._readonly else "write",
            policy="success",
        )
        unit.primary = self._primary
        if self._readonly and isinstance(binder, Runtime):
            # Read-your-writes within the process: a replica serves the block only once it
            # has replayed every commit this runtime made before it.
            unit.min_lsn = binder.last_commit
        unit.isolation = self._isolation
        if self._statement_timeout is not None:
            unit.statement_timeout = self._statement_timeout
        self._unit = unit
        self._token = current_unit.set(unit)
        return unit, binder

    def _leave(self, exc: BaseException | None) -> tuple[UnitOfWork, bool]:
        """Leave the block's context; the unit to end and whether it commits."""
        assert self._unit is not None
        current_unit.reset(self._token)
        return self._unit, exc is None

    def __enter__(self) -> Session:
        check_not_on_event_loop(self._config, "`with db.transaction()`")
        unit, binder = self._open()
        try:
            return unit.open_sync(binder, _ENDED_TRANSACTION)
        except BaseException:
            self._leave(None)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        unit, commit = self._leave(exc)
        error = unit.end_sync(commit)
        if error is not None:
            raise error

    async def __aenter__(self) -> AsyncSession:
        unit, binder = self._open()
        try:
            if unit.min_lsn and isinstance(binder, Runtime):
                await binder.wait_for_replica(unit)
            return unit.open_async(binder, _ENDED_TRANSACTION)
        except BaseException:
            self._leave(None)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        unit, commit = self._leave(exc)
        error = await unit.end(commit)
        if error is not None:
            raise error
