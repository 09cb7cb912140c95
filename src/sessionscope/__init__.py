"""sessionscope: one correct, fast SQLAlchemy unit of work per FastAPI request."""

from ._config import DatabaseConfig, DatabaseOptions, DatabaseSettings
from ._database import Database
from ._dependencies import AsyncDbSession, DbSession, get_async_session, get_session, unit_of_work
from ._discovery import database_of
from ._driver import DriverConnection, DriverDependency, driver_connection, driver_dependency
from ._errors import (
    BlockingSessionError,
    CommitFailedError,
    CommitOutcomeUnknownError,
    ConcurrentSessionUseError,
    ConfigurationError,
    ConflictError,
    DatabaseBusyError,
    DatabaseHTTPError,
    DatabaseUnavailableError,
    IdempotencyKeyError,
    ManualCommitWarning,
    MissingDriverError,
    MissingExtraError,
    NotInitializedError,
    QueryBudgetExceededError,
    SessionClosedError,
    SessionScopeError,
)
from ._idempotency_table import delete_expired_idempotency_keys, idempotency_table
from ._observe import QueryStats, QueryStatsLogFilter, query_stats
from ._policy import CommitPolicy, should_commit
from ._replicas import ReplicaStatus
from ._retry import Attempt
from ._stats import DatabaseStats, HistogramStats, PoolStats, RouteStats
from ._transaction import Transaction
from ._tuning import IsolationLevel
from ._unit import after_commit

__all__ = [
    "AsyncDbSession",
    "Attempt",
    "BlockingSessionError",
    "CommitFailedError",
    "CommitOutcomeUnknownError",
    "CommitPolicy",
    "ConcurrentSessionUseError",
    "ConfigurationError",
    "ConflictError",
    "Database",
    "DatabaseBusyError",
    "DatabaseConfig",
    "DatabaseHTTPError",
    "DatabaseOptions",
    "DatabaseSettings",
    "DatabaseStats",
    "DatabaseUnavailableError",
    "DbSession",
    "DriverConnection",
    "DriverDependency",
    "HistogramStats",
    "IdempotencyKeyError",
    "IsolationLevel",
    "ManualCommitWarning",
    "MissingDriverError",
    "MissingExtraError",
    "NotInitializedError",
    "PoolStats",
    "QueryBudgetExceededError",
    "QueryStats",
    "QueryStatsLogFilter",
    "ReplicaStatus",
    "RouteStats",
    "SessionClosedError",
    "SessionScopeError",
    "Transaction",
    "after_commit",
    "database_of",
    "delete_expired_idempotency_keys",
    "driver_connection",
    "driver_dependency",
    "get_async_session",
    "get_session",
    "idempotency_table",
    "query_stats",
    "should_commit",
    "unit_of_work",
]

__version__ = "0.1.0"
