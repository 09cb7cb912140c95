"""The commit decision and the error mapping: pure functions, enumerated."""

from __future__ import annotations

import sqlite3

import pytest
from psycopg.errors import AdminShutdown, LockNotAvailable
from sqlalchemy import exc as sa_exc

from sessionscope import (
    CommitFailedError,
    ConfigurationError,
    ConflictError,
    DatabaseBusyError,
    DatabaseConfig,
    should_commit,
    unit_of_work,
)
from sessionscope._policy import COMMIT_POLICIES, check_commit_policy, http_error_for

STATUSES = [100, 200, 201, 204, 299, 301, 302, 304, 399, 400, 401, 403, 404, 409, 422, 499, 500]
STATUSES += [502, 503, 599]

# The highest status that commits, per policy (None: nothing commits).
LAST_COMMITTING_STATUS = {"success": 399, "below_500": 499, "never": None}


@pytest.mark.parametrize("policy", COMMIT_POLICIES)
@pytest.mark.parametrize("status", STATUSES)
def test_status_decides_without_an_error(policy: str, status: int) -> None:
    limit = LAST_COMMITTING_STATUS[policy]
    assert should_commit(status, None, policy) is (limit is not None and status <= limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", COMMIT_POLICIES)
@pytest.mark.parametrize("status", [*STATUSES, None])
def test_an_escaped_exception_always_rolls_back(policy: str, status: int | None) -> None:
    assert should_commit(status, RuntimeError("boom"), policy) is False  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", COMMIT_POLICIES)
def test_no_response_rolls_back(policy: str) -> None:
    assert should_commit(None, None, policy) is False  # type: ignore[arg-type]


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown commit policy"):
        check_commit_policy("sometimes")
    with pytest.raises(ConfigurationError, match="unknown commit policy"):
        unit_of_work(commit="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown commit policy"):
        DatabaseConfig(commit_policy="sometimes")  # type: ignore[arg-type]


def _dbapi(
    cls: type[sa_exc.DBAPIError], orig: Exception | None = None, **kwargs: object
) -> sa_exc.DBAPIError:
    return cls(
        "INSERT INTO secret_table VALUES (?)",
        {"password": "hunter2"},
        orig or Exception("x"),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("at_commit", [True, False])
@pytest.mark.parametrize(
    ("error", "expected", "status"),
    [
        (_dbapi(sa_exc.IntegrityError), ConflictError, 409),
        (_dbapi(sa_exc.OperationalError, AdminShutdown("shutting down")), DatabaseBusyError, 503),
        (_dbapi(sa_exc.OperationalError, LockNotAvailable("lock")), DatabaseBusyError, 503),
        (sa_exc.TimeoutError("QueuePool limit reached"), DatabaseBusyError, 503),
        (sa_exc.DisconnectionError("gone"), DatabaseBusyError, 503),
        (_dbapi(sa_exc.InterfaceError, connection_invalidated=True), DatabaseBusyError, 503),
    ],
)
def test_database_errors_map_to_statuses(
    error: BaseException, expected: type, status: int, at_commit: bool
) -> None:
    mapped = http_error_for(error, retry_after=7, at_commit=at_commit)
    assert isinstance(mapped, expected)
    assert mapped.status_code == status
    assert "secret_table" not in mapped.detail
    assert "hunter2" not in mapped.detail
    if status == 503:
        assert mapped.headers == {"Retry-After": "7"}


@pytest.mark.parametrize(
    "error",
    [
        _dbapi(sa_exc.ProgrammingError),
        # Not every OperationalError is transient: SQLite's missing table is a bug in the app.
        _dbapi(sa_exc.OperationalError, sqlite3.OperationalError("no such table: notes")),
    ],
)
def test_other_database_errors_are_500_only_at_commit(error: sa_exc.DBAPIError) -> None:
    mapped = http_error_for(error, retry_after=1, at_commit=True)
    assert isinstance(mapped, CommitFailedError)
    assert mapped.status_code == 500
    # Raised by the endpoint it is a bug: let it reach the server's error handler.
    assert http_error_for(error, retry_after=1, at_commit=False) is None


@pytest.mark.parametrize("at_commit", [True, False])
def test_non_database_errors_are_not_mapped(at_commit: bool) -> None:
    assert http_error_for(ValueError("x"), retry_after=1, at_commit=at_commit) is None
