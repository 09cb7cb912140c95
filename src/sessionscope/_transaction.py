"""`Transaction`: the unit of work of ``db.transaction()``, for code outside requests."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ._unit import UnitOfWork, current_unit

if TYPE_CHECKING:
    from ._database import Database

_ENDED_TRANSACTION = (
    "this session belongs to a `db.transaction()` block that has ended; open a new block "
    "for more work"
)


class Transaction:
    """The context manager returned by `Database.transaction`; sync or async."""

    __slots__ = ("_db", "_readonly", "_token", "_unit")

    def __init__(self, db: Database, *, readonly: bool) -> None:
        self._db = db
        self._readonly = readonly
        self._unit: UnitOfWork | None = None
        self._token: Any = None

    def _open(self) -> UnitOfWork:
        if self._unit is not None:
            raise RuntimeError(
                "a Transaction block cannot be entered twice; call db.transaction() again"
            )
        unit = UnitOfWork(
            self._db,
            mode="read" if self._readonly else "write",
            policy="never" if self._readonly else "success",
        )
        self._unit = unit
        self._token = current_unit.set(unit)
        return unit

    def _leave(self, exc: BaseException | None) -> tuple[UnitOfWork, bool]:
        """Leave the block's context; the unit to end and whether it commits."""
        assert self._unit is not None
        current_unit.reset(self._token)
        return self._unit, exc is None and not self._readonly

    def __enter__(self) -> Session:
        self._db.check_not_on_event_loop("`with db.transaction()`")
        return self._open().open_sync(_ENDED_TRANSACTION)

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
        return self._open().open_async(_ENDED_TRANSACTION)

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
