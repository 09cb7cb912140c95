"""`Transaction`: the unit of work of ``db.transaction()``, for code outside requests."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ._config import DatabaseConfig
from ._runtime import Binder, Runtime
from ._unit import UnitOfWork, check_not_on_event_loop, current_unit

_ENDED_TRANSACTION = (
    "this session belongs to a `db.transaction()` block that has ended; open a new block "
    "for more work"
)


class Transaction:
    """The context manager returned by `Database.transaction`; sync or async.

    The block commits when it exits normally and rolls back when it raises. A read-only block
    refuses writes and ends without a COMMIT; its `after_commit` callbacks run when it exits
    normally, as they do for a read-only request.
    """

    __slots__ = ("_config", "_locate", "_owner", "_primary", "_readonly", "_token", "_unit")

    def __init__(
        self,
        owner: object,
        config: DatabaseConfig,
        locate: Callable[[], Binder],
        *,
        readonly: bool,
        primary: bool = False,
    ) -> None:
        self._owner = owner
        self._primary = primary
        self._config = config
        self._locate = locate
        self._readonly = readonly
        self._unit: UnitOfWork | None = None
        self._token: Any = None

    def _open(self) -> tuple[UnitOfWork, Binder]:
        if self._unit is not None:
            raise RuntimeError(
                "a Transaction block cannot be entered twice; call db.transaction() again"
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
