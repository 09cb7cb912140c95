"""sessionscope: one correct, fast SQLAlchemy unit of work per FastAPI request."""

from ._config import DatabaseConfig, DatabaseOptions, DatabaseSettings
from ._database import Database
from ._dependencies import AsyncDbSession, DbSession, get_async_session, get_session, unit_of_work
from ._errors import (
    BlockingSessionError,
    CommitFailedError,
    ConcurrentSessionUseError,
    ConfigurationError,
    ConflictError,
    DatabaseBusyError,
    DatabaseHTTPError,
    DatabaseUnavailableError,
    MissingDriverError,
    MissingExtraError,
    NotInitializedError,
    QueryBudgetExceededError,
    SessionClosedError,
    SessionScopeError,
)
from ._observe import QueryStats, QueryStatsLogFilter, query_stats
from ._policy import CommitPolicy, should_commit
from ._stats import DatabaseStats, HistogramStats, PoolStats, RouteStats
from ._transaction import Transaction
from ._unit import after_commit

__all__ = [
    "AsyncDbSession",
    "BlockingSessionError",
    "CommitFailedError",
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
    "HistogramStats",
    "MissingDriverError",
    "MissingExtraError",
    "NotInitializedError",
    "PoolStats",
    "QueryBudgetExceededError",
    "QueryStats",
    "QueryStatsLogFilter",
    "RouteStats",
    "SessionClosedError",
    "SessionScopeError",
    "Transaction",
    "after_commit",
    "get_async_session",
    "get_session",
    "query_stats",
    "should_commit",
    "unit_of_work",
]

__version__ = "0.1.0"
