"""Exceptions raised by sessionscope.

Every exception sessionscope raises on purpose derives from one root::

    SessionScopeError
    ├── ConfigurationError            bad settings, found at start-up
    │   ├── MissingDriverError        (also an ImportError) a database driver is not installed
    │   ├── MissingExtraError         (also an ImportError) an optional dependency is not installed
    │   └── DatabaseUnavailableError  the database did not answer at start-up
    ├── NotInitializedError           the app's lifespan did not run (engines do not exist)
    ├── SessionClosedError            the request's unit of work has ended
    ├── BlockingSessionError          a sync session inside an ``async def`` endpoint
    ├── ConcurrentSessionUseError     one AsyncSession used from two tasks at once
    ├── ManualCommitWarning           (also a UserWarning) a request's session committed by hand
    ├── QueryBudgetExceededError      a request ran more statements than its budget (tests)
    └── DatabaseHTTPError             (also an HTTPException) a database failure as a response
        ├── ConflictError             409: a constraint was violated (at flush or at COMMIT)
        ├── DatabaseBusyError         503: the database is unavailable or busy; retrying can succeed
        │   └── CommitOutcomeUnknownError  503: the connection was lost during COMMIT: the
        │                                  write may have landed
        ├── CommitFailedError         500: the COMMIT failed for another reason
        └── IdempotencyKeyError       400, 409, 422: an ``Idempotency-Key`` that cannot be served

Messages say what went wrong and how to fix it. None of them holds a password, SQL text or
SQL parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException


class SessionScopeError(Exception):
    """Root of every exception sessionscope raises on purpose."""


class ConfigurationError(SessionScopeError):
    """The configuration cannot work; raised at start-up, never per request."""


class MissingDriverError(ConfigurationError, ImportError):
    """The database driver for a URL is not installed.

    The message holds the exact ``pip install "sessionscope[extra]"`` line.
    """


class DatabaseUnavailableError(ConfigurationError):
    """The database did not answer the start-up check."""


class NotInitializedError(SessionScopeError):
    """A session was asked for before the app's lifespan started the database."""


class SessionClosedError(SessionScopeError):
    """The session belongs to a unit of work that has already ended."""


class BlockingSessionError(SessionScopeError):
    """A sync session was requested where it would block the event loop."""


class ConcurrentSessionUseError(SessionScopeError):
    """One AsyncSession was used by two tasks at the same time."""


class ManualCommitWarning(SessionScopeError, UserWarning):
    """A request's session was committed by hand: a later error response cannot roll back
    what that commit made permanent (``manual_commit="warn"``)."""


class DatabaseHTTPError(SessionScopeError, HTTPException):
    """A database failure turned into an HTTP error response.

    It is an ``HTTPException``: the app's own handler for ``HTTPException`` renders it, so
    every middleware (CORS, logging) sees the response as it sees any other error.
    """

    def __init__(
        self,
        status_code: int,
        detail: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        HTTPException.__init__(self, status_code=status_code, detail=detail, headers=headers)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"


class ConflictError(DatabaseHTTPError):
    """409: the change violates a constraint of the database."""


class DatabaseBusyError(DatabaseHTTPError):
    """503: a transient failure: no connection became free in time, the database could not
    be reached or is not serving, or it is busy (lock timeout, deadlock). docs/errors.md has
    the list."""


class CommitOutcomeUnknownError(DatabaseBusyError):
    """503: the connection to the database was lost while the COMMIT was under way. The
    server may have committed the transaction before the connection broke, or not: nobody
    can tell. A client that retries blindly may do the work twice; a retry with the same
    ``Idempotency-Key`` on a route declared ``unit_of_work(idempotency=True)`` is safe."""


class IdempotencyKeyError(DatabaseHTTPError):
    """An ``Idempotency-Key`` request header that cannot be served: 400 (empty, too long, not
    printable ASCII, or missing where the route requires one), 409 (a request with the same
    key is still running), 422 (the key was used before for a different request)."""


class CommitFailedError(DatabaseHTTPError):
    """500: the transaction could not be committed for a reason the client cannot fix."""


class MissingExtraError(ConfigurationError, ImportError):
    """A feature was turned on whose optional dependency is not installed.

    The message holds the exact ``pip install "sessionscope[extra]"`` line.
    """


class QueryBudgetExceededError(SessionScopeError):
    """A request ran more SQL statements than its query budget, in a test that fails on it
    (``sessionscope.testing.fail_on_query_budget``, the pytest plugin's option)."""
