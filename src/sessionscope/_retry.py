"""Retry-safe units of work: which errors mean "run the whole transaction again", the jittered
backoff between attempts, and the attempts of ``db.transaction(retries=N)``.

A serialization failure or a deadlock rolls the whole transaction back: the database asks the
client to run it again from its first statement. Re-running only the failed statement, or
re-running after a COMMIT went through, is wrong; these helpers re-run whole units only.

The drivers report these errors in different shapes: psycopg and asyncpg (through SQLAlchemy's
adapter) carry a SQLSTATE in ``sqlstate``, psycopg2 in ``pgcode``, PyMySQL and aiomysql an
error number in ``args[0]`` (their ``sqlstate`` is often a generic class). `error_code`
reads them all.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import anyio
from sqlalchemy import exc as sa_exc

logger = logging.getLogger("sessionscope")

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"

MYSQL_DEADLOCK = 1213
MYSQL_LOCK_WAIT_TIMEOUT = 1205
MARIADB_STATEMENT_TIMEOUT = 1969
MYSQL_STATEMENT_TIMEOUT = 3024

_RETRYABLE: frozenset[str | int] = frozenset(
    {SERIALIZATION_FAILURE, DEADLOCK_DETECTED, MYSQL_DEADLOCK}
)
_LOCK_TIMEOUTS: frozenset[str | int] = frozenset({LOCK_NOT_AVAILABLE, MYSQL_LOCK_WAIT_TIMEOUT})
_STATEMENT_TIMEOUTS: frozenset[str | int] = frozenset(
    {QUERY_CANCELED, MARIADB_STATEMENT_TIMEOUT, MYSQL_STATEMENT_TIMEOUT}
)

FIRST_DELAY = 0.01
"""Seconds of the first backoff; each further one doubles, up to `MAX_DELAY`."""
MAX_DELAY = 0.5


def error_code(error: BaseException) -> str | int | None:
    """The SQLSTATE (PostgreSQL) or error number (MySQL/MariaDB) of a database error."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 4:
        seen += 1
        candidate: Any = current.orig if isinstance(current, sa_exc.DBAPIError) else current
        args = getattr(candidate, "args", ())
        if (
            isinstance(current, sa_exc.DBAPIError)
            and args
            and isinstance(args[0], int)
            and not isinstance(args[0], bool)
        ):
            # MySQL drivers: the error number is precise, their SQLSTATE is often generic.
            return args[0]
        for attribute in ("sqlstate", "pgcode"):
            code = getattr(candidate, attribute, None)
            if isinstance(code, str):
                return code
        current = current.__cause__
    return None


def is_retryable(error: BaseException, *, lock_timeouts: bool = False) -> bool:
    """Whether ``error`` rolled the transaction back and asks for the whole unit to run
    again: serialization failure (40001), deadlock (40P01, MySQL 1213) and, when
    ``lock_timeouts``, a lock wait that timed out (55P03, MySQL 1205)."""
    code = error_code(error)
    if code is None:
        return False
    return code in _RETRYABLE or (lock_timeouts and code in _LOCK_TIMEOUTS)


def is_statement_timeout(error: BaseException) -> bool:
    """Whether ``error`` is a statement cancelled by its timeout (PostgreSQL 57014,
    MariaDB 1969, MySQL 3024)."""
    return error_code(error) in _STATEMENT_TIMEOUTS


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before re-running after failed ``attempt`` (0-based): "full jitter",
    a random share of an exponentially growing cap, so that the units that collided do not
    collide again in step."""
    cap = min(MAX_DELAY, FIRST_DELAY * (2**attempt))
    return random.uniform(0, cap)


def log_retry(what: str, error: BaseException, attempt: int, retries: int, delay: float) -> None:
    logger.warning(
        "%s failed with a retryable error (%s, code %s); running it again (%d of %d) in %.3f s",
        what,
        type(error).__name__,
        error_code(error),
        attempt + 1,
        retries,
        delay,
    )


# -- db.transaction(retries=N) --------------------------------------------------------------


class _Block(Protocol):
    """What an attempt needs of a transaction block (`Transaction`)."""

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


_S = TypeVar("_S")


class Attempt(Generic[_S]):
    """One run of a retried transaction block: ``with attempt as session`` (or ``async with``).

    A retryable failure of the block or of its COMMIT ends the block quietly (it was rolled
    back) when attempts remain; the loop then runs the block again after a backoff. Any other
    error, and the last attempt's, propagates.
    """

    __slots__ = ("_block", "_lock_timeouts", "failed", "last", "number")

    def __init__(self, block: _Block, number: int, *, last: bool, lock_timeouts: bool) -> None:
        self._block = block
        self._lock_timeouts = lock_timeouts
        self.number = number
        """0 for the first run."""
        self.last = last
        self.failed: BaseException | None = None

    def _swallow(self, error: BaseException | None) -> bool:
        if error is None or self.last or not isinstance(error, Exception):
            return False
        if not is_retryable(error, lock_timeouts=self._lock_timeouts):
            return False
        self.failed = error
        return True

    def __enter__(self) -> _S:
        session: _S = self._block.__enter__()
        return session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            self._block.__exit__(exc_type, exc, tb)
        except Exception as commit_error:
            if self._swallow(commit_error):
                return True
            raise
        return self._swallow(exc)

    async def __aenter__(self) -> _S:
        session: _S = await self._block.__aenter__()
        return session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            await self._block.__aexit__(exc_type, exc, tb)
        except Exception as commit_error:
            if self._swallow(commit_error):
                return True
            raise
        return self._swallow(exc)


def attempts(
    make_block: Callable[[], _Block], retries: int, *, lock_timeouts: bool
) -> Iterator[Attempt[Any]]:
    """The attempts of a sync block: at most ``retries + 1``, with backoff between them."""
    for number in range(retries + 1):
        attempt: Attempt[Any] = Attempt(
            make_block(), number, last=number == retries, lock_timeouts=lock_timeouts
        )
        yield attempt
        if attempt.failed is None:
            return
        delay = backoff_delay(number)
        log_retry("a transaction", attempt.failed, number, retries, delay)
        time.sleep(delay)


async def async_attempts(
    make_block: Callable[[], _Block], retries: int, *, lock_timeouts: bool
) -> AsyncIterator[Attempt[Any]]:
    """`attempts` for ``async with``."""
    for number in range(retries + 1):
        attempt: Attempt[Any] = Attempt(
            make_block(), number, last=number == retries, lock_timeouts=lock_timeouts
        )
        yield attempt
        if attempt.failed is None:
            return
        delay = backoff_delay(number)
        log_retry("a transaction", attempt.failed, number, retries, delay)
        await anyio.sleep(delay)
