"""The commit/rollback decision and the mapping of database failures to responses.

Both are pure functions of their arguments: no I/O, no state. The request machinery calls
them; the tests enumerate them.
"""

from __future__ import annotations

import math
from typing import Literal

from ._classify import TRANSIENT_KINDS, classify, cut_during_commit
from ._errors import (
    CommitFailedError,
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConflictError,
    DatabaseBusyError,
    DatabaseHTTPError,
)
from ._retry import is_retryable, is_statement_timeout

CommitPolicy = Literal["success", "below_500", "never"]
"""When a request's unit of work commits.

* ``"success"`` (the default): the response the client receives has a status below 400 and no
  exception escaped the endpoint.
* ``"below_500"``: also commit on client errors (4xx), for routes that must record a refused
  attempt (an audit row, a failed-login counter). Server errors and exceptions still roll back.
* ``"never"``: always roll back; for dry runs and routes that must not write.
"""

COMMIT_POLICIES: tuple[CommitPolicy, ...] = ("success", "below_500", "never")


def check_commit_policy(policy: object) -> CommitPolicy:
    """``policy`` if it is a `CommitPolicy`; else a `ConfigurationError` naming the choices."""
    if policy not in COMMIT_POLICIES:
        raise ConfigurationError(
            f"unknown commit policy {policy!r}; expected one of {', '.join(COMMIT_POLICIES)}"
        )
    return policy


CONFLICT_DETAIL = "The request conflicts with the current state of the data."
BUSY_DETAIL = "The database is busy or unavailable; retry later."


def busy_retry_after(retry_after: int, waited: float) -> int:
    """Seconds of the ``Retry-After`` of a 503 for an exhausted pool: ``retry_after``, or,
    for a request shed after (or instead of) waiting ``waited`` seconds, the time the queue
    it met needs to drain, whichever is longer."""
    return max(retry_after, math.ceil(waited))


COMMIT_FAILED_DETAIL = "The transaction could not be committed."
OUTCOME_UNKNOWN_DETAIL = (
    "The connection to the database was lost during COMMIT: the outcome is unknown, the "
    "change may have been saved. Retry with the same Idempotency-Key header (routes that "
    "accept one answer a retry exactly once), or check the data before retrying."
)


def should_commit(status: int | None, error: BaseException | None, policy: CommitPolicy) -> bool:
    """Return whether the unit of work commits.

    ``status`` is the status of the response about to be sent, or ``None`` when no response
    was started; ``error`` is the exception that escaped the endpoint, if any.
    """
    if policy == "never" or error is not None or status is None:
        return False
    # Policies are checked where they are configured (`check_commit_policy`).
    return status < (500 if policy == "below_500" else 400)


def http_error_for(
    error: BaseException, *, retry_after: int, at_commit: bool
) -> DatabaseHTTPError | None:
    """Return the error response a database failure becomes, or ``None`` to let it propagate.

    The kind of failure comes from `classify` (exception type and SQLSTATE / driver error
    code): a conflict → 409; a transient failure (an unavailable or busy database, a
    statement cancelled by its timeout, a serialization failure or a deadlock) → 503 with
    ``Retry-After``; a connection lost during the COMMIT itself (`cut_during_commit`) → 503
    whose detail says that the outcome is unknown. Any other database error becomes a 500
    when it broke the COMMIT (``at_commit``); raised by the endpoint it is a bug in the app
    (a missing table, bad SQL) and propagates to the server's error handler with its
    traceback. The detail never holds SQL text or parameters.
    """
    if isinstance(error, DatabaseHTTPError):
        return error
    kind = classify(error)
    if kind == "conflict":
        return ConflictError(409, CONFLICT_DETAIL)
    if kind in TRANSIENT_KINDS or is_statement_timeout(error) or is_retryable(error):
        headers = {"Retry-After": str(retry_after)}
        if at_commit and cut_during_commit(error):
            return CommitOutcomeUnknownError(503, OUTCOME_UNKNOWN_DETAIL, headers=headers)
        return DatabaseBusyError(503, BUSY_DETAIL, headers=headers)
    if at_commit and kind is not None:
        return CommitFailedError(500, COMMIT_FAILED_DETAIL)
    return None
