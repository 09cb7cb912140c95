"""sessionscope: one correct, fast SQLAlchemy unit of work per FastAPI request."""

from ._config import DatabaseConfig, DatabaseOptions, DatabaseSettings
from ._database import Database
from ._dependencies import AsyncDbSession, DbSession, get_async_session, get_session, unit_of_work
from ._discovery import database_of
from ._errors import (
    BlockingSessionError,
    CommitFailedError,
    ConcurrentSessionUseError,
    ConfigurationError,
    ConflictError,
    DatabaseBusyError,
    DatabaseHTTPError,
    DatabaseUnavailableError,
    ManualCommitWarning,
    MissingDriverError,
    NotInitializedError,
    SessionClosedError,
    SessionScopeError,
)
from ._policy import CommitPolicy, should_commit
from ._replicas import ReplicaStatus
from ._retry import Attempt
from ._transaction import Transaction
from ._tuning import IsolationLevel
from ._unit import after_commit

__all__ = [
    "AsyncDbSession",
    "Attempt",
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
    "DatabaseUnavailableError",
    "DbSession",
    "ManualCommitWarning",
    "IsolationLevel",
    "MissingDriverError",
    "NotInitializedError",
    "ReplicaStatus",
    "SessionClosedError",
    "SessionScopeError",
    "Transaction",
    "after_commit",
    "database_of",
    "get_async_session",
    "get_session",
    "should_commit",
    "unit_of_work",
]

__version__ = "0.1.0"
