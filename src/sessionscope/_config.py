"""Configuration: one frozen dataclass, read once at start-up."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ._errors import ConfigurationError
from ._policy import CommitPolicy, busy_retry_after, check_commit_policy
from ._pool import DEFAULT_OVERFLOW_IDLE_TIMEOUT
from ._tuning import check_statement_timeout

DEFAULT_URL = "sqlite:///./sessionscope.db"

SyncInAsync = Literal["raise", "warn"]

SessionClass = Literal["sqlalchemy", "sqlmodel"]

ManualCommit = Literal["warn", "raise", "allow"]

ReplicaReads = Literal["readonly", "safe_methods"]
"""Which request units of work may read from a replica: ``"readonly"`` only read-only ones
(``unit_of_work(readonly=True)``); ``"safe_methods"`` also every GET and HEAD request, whose
units then become read-only (a route that writes on GET declares ``unit_of_work(write=True)``
or ``unit_of_work(primary=True)``). It applies with or without replicas, so that an app
behaves the same in development, without them."""

REPLICA_READS: tuple[ReplicaReads, ...] = ("readonly", "safe_methods")


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    """How a `Database` connects and behaves. Every field has a working default."""

    url: str = DEFAULT_URL
    """SQLAlchemy URL of the database. Its driver decides the primary flavour (sync or async);
    the other flavour's driver is derived (``psycopg`` ↔ ``asyncpg``, ``pymysql`` ↔ ``aiomysql``,
    ``pysqlite`` ↔ ``aiosqlite``) unless `sync_url` / `async_url` name it."""

    sync_url: str | None = None
    """URL for sync sessions, when the derived one is not wanted."""

    async_url: str | None = None
    """URL for async sessions, when the derived one is not wanted."""

    pool_size: int = 5
    """Connections kept open in the pool."""

    max_overflow: int = 10
    """Connections opened beyond `pool_size` under load (``-1``: no limit). A returned one is
    kept for reuse until it has been idle for `overflow_idle_timeout` seconds."""

    overflow_idle_timeout: float = DEFAULT_OVERFLOW_IDLE_TIMEOUT
    """Seconds a returned overflow connection stays open for reuse before it is closed, so
    that steady load above `pool_size` reuses connections instead of opening and closing one
    per burst. ``0`` closes it as soon as it is returned (SQLAlchemy's `QueuePool`)."""

    pool_timeout: float = 5.0
    """Seconds a request waits for a connection before it is answered 503 with ``Retry-After``."""

    pool_recycle: int | None = None
    """Seconds after which a pooled connection is replaced. ``None``: 3600 on MySQL/MariaDB
    (below the server's ``wait_timeout``), never elsewhere."""

    ping_after_idle: float | None = 1.0
    """Ping a pooled connection at checkout when it sat idle longer than this many seconds, and
    replace it if the ping fails: a restarted database or a killed backend never fails a request,
    and busy connections skip the round trip. ``0`` pings at every checkout; ``None`` never."""

    reconnect_retries: int = 2
    """Times the first statement of a unit of work runs again, on a fresh connection, when the
    pooled connection it was sent on turns out to have been closed by the server (a killed
    backend, a restart) and nothing of the unit had run yet: nothing was sent that could have
    had an effect, so the request does not fail. Never once a statement of the unit has run.
    ``0``: never. SQLite has no disconnects."""

    shed_overload: bool = False
    """Answer 503 with ``Retry-After`` at once, instead of after `pool_timeout`, to a request
    that arrives when the queue for connections is longer than the pool can drain within
    `pool_timeout` (at the best rate it drained a queue over the last seconds), and to the end
    of a queue that cannot make it. The others keep their place and order. Off by default:
    when the event loop, not the pool, is what is saturated, it was not measured to help."""

    rollback_on_disconnect: bool = True
    """Roll back, instead of committing, a request unit of work whose client has gone away
    (its ``http.disconnect`` has arrived) by the time the response starts: nobody will see the
    answer, and a client that gave up will likely send the request again. Logged."""

    echo: bool = False
    """Log every SQL statement (parameters stay hidden unless `hide_parameters` is off)."""

    hide_parameters: bool = True
    """Keep SQL parameters out of log lines and exception messages."""

    sqlite_busy_timeout: float = 5.0
    """SQLite: seconds a writer waits for the database lock before failing."""

    sync_in_async: SyncInAsync = "raise"
    """What a sync session requested by an ``async def`` endpoint does: ``"raise"`` refuses it,
    ``"warn"`` emits a `RuntimeWarning` and goes on (the event loop blocks on each query)."""

    commit_policy: CommitPolicy = "success"
    """When request units of work commit, unless a route says otherwise (see `CommitPolicy`)."""

    check_on_startup: bool = True
    """Connect once at start-up, so an unreachable database stops the app with a clear message
    instead of failing its first requests."""

    retry_after: int = 1
    """Seconds sent in ``Retry-After`` with 503 responses."""

    manual_commit: ManualCommit = "warn"
    """What a ``session.commit()`` in a request handler does. It makes the work before it
    permanent whatever the response, so an error response no longer rolls it back:
    ``"warn"`` emits a `ManualCommitWarning` once per route, ``"raise"`` refuses the commit
    (`SessionScopeError`), ``"allow"`` lets it pass silently."""

    session_class: SessionClass = "sqlalchemy"
    """The sessions' classes: SQLAlchemy's ``Session`` / ``AsyncSession``, or SQLModel's
    (``"sqlmodel"``, extra ``sessionscope[sqlmodel]``), whose ``exec()`` returns model
    objects. Either way with sessionscope's guards. Routes that declare
    ``sessionscope.sqlmodel.DbSession`` / ``AsyncDbSession`` get SQLModel's regardless."""

    replicas: Sequence[str] = ()
    """URLs of PostgreSQL streaming replicas of `url` (either driver flavour, the other one
    derived). Read-only units of work run on a healthy replica within `max_replica_lag`;
    everything else on the primary. Empty: no replicas, nothing changes."""

    max_replica_lag: float = 5.0
    """Seconds a replica may be behind the primary and still serve reads; one further
    behind (or down) is skipped until it catches up."""

    replica_reads: ReplicaReads = "readonly"
    """Which request units of work may read from a replica (see `ReplicaReads`)."""

    replica_check_interval: float = 0.25
    """Seconds between two checks of each replica's replay position, lag and health."""

    bookmark_header: str = "X-DB-Bookmark"
    """Response header carrying the bookmark (the primary's WAL position) of a committed
    write, and the request header a client sends it back in (used only with `replicas`)."""

    bookmark_cookie: str | None = None
    """Also send the bookmark in this cookie, and read it from there: browsers then get
    read-your-writes without any client code. ``None``: header only."""

    bookmark_wait: float = 0.02
    """Seconds a request carrying a bookmark waits for a replica to replay that far before it
    is served by the primary instead. ``0``: straight to the primary."""

    served_by_header: str | None = None
    """Response header naming the database that served the request (``primary``,
    ``replica 1``...), for debugging. ``None``: not sent (it is always in the debug log)."""

    statement_timeout: float | None = None
    """Seconds any one statement may run before the database cancels it (the request is then
    answered 503 with ``Retry-After``); routes and transactions can set their own. ``None``:
    no limit. PostgreSQL, MariaDB and MySQL (SELECTs only); ignored on SQLite."""

    pgbouncer: bool = False
    """PostgreSQL is reached through PgBouncer in transaction pooling mode: no server-side
    prepared statements (psycopg ``prepare_threshold=None``; asyncpg without statement cache,
    unnamed statements) and read-only units in read-only transactions, not autocommit."""

    retry_lock_timeouts: bool = False
    """Also re-run units of work with ``retries`` when a lock wait timed out (MySQL/MariaDB
    1205, PostgreSQL 55P03 under a ``lock_timeout``), not only on serialization failures and
    deadlocks."""

    metrics: bool = True
    """Keep pool and unit-of-work metrics (`Database.stats`): outcomes, and the wait for a
    connection and its hold time per route. A few additions per request."""

    query_stats: bool = False
    """Count each request's statements, database time and rows (`query_stats`,
    `QueryStatsLogFilter`). `server_timing`, `query_budget` and `opentelemetry` turn it on."""

    server_timing: bool = False
    """Add ``Server-Timing: db;dur=12.3;desc="4 queries"`` to responses of requests that used
    the database."""

    query_budget: int | None = None
    """Statements a request may run before a warning names the statement it repeated most
    (an N+1 pattern). A route sets its own with ``unit_of_work(query_budget=...)``. ``None``:
    no budget."""

    slow_query_threshold: float | None = None
    """Log statements that take at least this many seconds (logger
    ``sessionscope.slow_query``), with the route and the SQL without parameters. ``None``: off."""

    prometheus: bool = False
    """Export the metrics to ``prometheus_client``'s registry while the app runs (extra
    ``prometheus``); serve them with ``prometheus_client.make_asgi_app()``."""

    opentelemetry: bool = False
    """One OpenTelemetry span per request unit of work, under the request's span (extra
    ``otel``)."""

    idempotency_ttl: float = 86400.0
    """Seconds an idempotency key (``unit_of_work(idempotency=True)``) and its stored response
    are kept: a retry within this time gets the stored response, a later one runs as a new
    request. Default: 24 hours."""

    engine_options: Mapping[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``create_engine``; they win over sessionscope's defaults."""

    @property
    def longest_retry_after(self) -> int:
        """The longest ``Retry-After`` (seconds) this database's 503s carry: a request shed
        under overload is told to come back after `pool_timeout`, at least `retry_after`.
        Behind a server that closes idle kept-alive connections, keep them open longer."""
        return busy_retry_after(self.retry_after, self.pool_timeout)

    def __post_init__(self) -> None:
        if self.pool_size < 1:
            raise ConfigurationError(f"pool_size must be at least 1, got {self.pool_size}")
        if self.max_overflow < -1:
            raise ConfigurationError(
                f"max_overflow must be -1 (unbounded) or more, got {self.max_overflow}"
            )
        if self.overflow_idle_timeout < 0:
            raise ConfigurationError(
                f"overflow_idle_timeout must be >= 0, got {self.overflow_idle_timeout}"
            )
        if self.pool_timeout <= 0:
            raise ConfigurationError(f"pool_timeout must be positive, got {self.pool_timeout}")
        if self.ping_after_idle is not None and self.ping_after_idle < 0:
            raise ConfigurationError(
                f"ping_after_idle must be None or >= 0, got {self.ping_after_idle}"
            )
        if (
            isinstance(self.reconnect_retries, bool)
            or not isinstance(self.reconnect_retries, int)
            or self.reconnect_retries < 0
        ):
            raise ConfigurationError(
                f"reconnect_retries must be a whole number >= 0, got {self.reconnect_retries!r}"
            )
        if self.sync_in_async not in ("raise", "warn"):
            raise ConfigurationError(
                f"sync_in_async must be 'raise' or 'warn', got {self.sync_in_async!r}"
            )
        check_commit_policy(self.commit_policy)
        if self.manual_commit not in ("warn", "raise", "allow"):
            raise ConfigurationError(
                f"manual_commit must be 'warn', 'raise' or 'allow', got {self.manual_commit!r}"
            )
        if self.session_class not in ("sqlalchemy", "sqlmodel"):
            raise ConfigurationError(
                f"session_class must be 'sqlalchemy' or 'sqlmodel', got {self.session_class!r}"
            )
        check_statement_timeout(self.statement_timeout)
        if self.pgbouncer:
            _check_pgbouncer_url(self)
        if self.query_budget is not None and self.query_budget < 0:
            raise ConfigurationError(f"query_budget must be None or >= 0, got {self.query_budget}")
        if self.slow_query_threshold is not None and self.slow_query_threshold < 0:
            raise ConfigurationError(
                f"slow_query_threshold must be None or >= 0, got {self.slow_query_threshold}"
            )
        if self.idempotency_ttl <= 0:
            raise ConfigurationError(
                f"idempotency_ttl must be positive (seconds), got {self.idempotency_ttl}"
            )
        self._check_replicas()

    def _check_replicas(self) -> None:
        if isinstance(self.replicas, str):
            raise ConfigurationError(
                "replicas must be a list of URLs, not one string; from the environment, "
                "DATABASE_REPLICA_URLS takes them comma-separated"
            )
        object.__setattr__(self, "replicas", tuple(self.replicas))
        if self.max_replica_lag <= 0:
            raise ConfigurationError(
                f"max_replica_lag must be positive, got {self.max_replica_lag}"
            )
        if self.replica_check_interval <= 0:
            raise ConfigurationError(
                f"replica_check_interval must be positive, got {self.replica_check_interval}"
            )
        if self.bookmark_wait < 0:
            raise ConfigurationError(f"bookmark_wait must be >= 0, got {self.bookmark_wait}")
        if self.replica_reads not in REPLICA_READS:
            raise ConfigurationError(
                f"replica_reads must be one of {', '.join(REPLICA_READS)}, got "
                f"{self.replica_reads!r}"
            )
        if not self.bookmark_header:
            raise ConfigurationError("bookmark_header must name a header")
        if not self.replicas:
            return
        from ._engines import mask_url, parse_url

        for url in (self.url, *self.replicas):
            if parse_url(url).get_backend_name() != "postgresql":
                raise ConfigurationError(
                    f"replicas work with PostgreSQL streaming replication only; "
                    f"{mask_url(url)} is not a PostgreSQL URL"
                )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DatabaseConfig:
        """A config from keyword options; an unknown name is a `ConfigurationError` that
        lists the valid ones."""
        unknown = sorted(options.keys() - _FIELD_NAMES)
        if unknown:
            raise ConfigurationError(
                f"unknown database option(s) {', '.join(map(repr, unknown))}; the options are: "
                f"{', '.join(sorted(_FIELD_NAMES))}"
            )
        return cls(**options)

    def __repr__(self) -> str:
        from ._engines import mask_url

        return (
            f"DatabaseConfig(url={mask_url(self.url)!r}, pool_size={self.pool_size}, "
            f"max_overflow={self.max_overflow}, pool_timeout={self.pool_timeout})"
        )


def _check_pgbouncer_url(config: DatabaseConfig) -> None:
    urls = [url for url in (config.url, config.sync_url, config.async_url) if url is not None]
    for url in urls:
        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            continue  # reported, password masked, when the engines are made
        if backend != "postgresql":
            raise ConfigurationError(
                f"pgbouncer=True is for PostgreSQL URLs; this database is {backend}. Drop "
                "pgbouncer=True (DATABASE_PGBOUNCER) or point the URL at PgBouncer."
            )


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(DatabaseConfig))


class DatabaseOptions(TypedDict, total=False):
    """The keyword options of `Database` and `Database.from_env`: the fields of
    `DatabaseConfig` but ``url``, which is positional. Defaults live in `DatabaseConfig`."""

    sync_url: str | None
    async_url: str | None
    pool_size: int
    max_overflow: int
    overflow_idle_timeout: float
    pool_timeout: float
    pool_recycle: int | None
    ping_after_idle: float | None
    reconnect_retries: int
    shed_overload: bool
    rollback_on_disconnect: bool
    echo: bool
    hide_parameters: bool
    sqlite_busy_timeout: float
    sync_in_async: SyncInAsync
    commit_policy: CommitPolicy
    check_on_startup: bool
    retry_after: int
    manual_commit: ManualCommit
    session_class: SessionClass
    replicas: Sequence[str]
    max_replica_lag: float
    replica_reads: ReplicaReads
    replica_check_interval: float
    bookmark_header: str
    bookmark_cookie: str | None
    bookmark_wait: float
    served_by_header: str | None
    statement_timeout: float | None
    pgbouncer: bool
    retry_lock_timeouts: bool
    metrics: bool
    query_stats: bool
    server_timing: bool
    query_budget: int | None
    slow_query_threshold: float | None
    prometheus: bool
    opentelemetry: bool
    idempotency_ttl: float
    engine_options: Mapping[str, Any]


def default(name: str) -> Any:
    """The default of a `DatabaseConfig` field: the one place defaults are declared."""
    return DatabaseConfig.__dataclass_fields__[name].default


class DatabaseSettings(BaseSettings):
    """`DatabaseConfig` read from the environment: ``DATABASE_`` and the upper-case field name
    (``DATABASE_URL``, ``DATABASE_POOL_SIZE``...), for every field but ``engine_options``.

    Defaults are `DatabaseConfig`'s own.
    """

    model_config = SettingsConfigDict(env_prefix="DATABASE_", extra="ignore")

    url: SecretStr = Field(default=SecretStr(default("url")))
    sync_url: SecretStr | None = None
    async_url: SecretStr | None = None
    pool_size: int = default("pool_size")
    max_overflow: int = default("max_overflow")
    overflow_idle_timeout: float = default("overflow_idle_timeout")
    pool_timeout: float = default("pool_timeout")
    pool_recycle: int | None = default("pool_recycle")
    ping_after_idle: float | None = default("ping_after_idle")
    reconnect_retries: int = default("reconnect_retries")
    shed_overload: bool = default("shed_overload")
    rollback_on_disconnect: bool = default("rollback_on_disconnect")
    echo: bool = default("echo")
    hide_parameters: bool = default("hide_parameters")
    sqlite_busy_timeout: float = default("sqlite_busy_timeout")
    sync_in_async: SyncInAsync = default("sync_in_async")
    commit_policy: CommitPolicy = default("commit_policy")
    check_on_startup: bool = default("check_on_startup")
    retry_after: int = default("retry_after")
    metrics: bool = default("metrics")
    query_stats: bool = default("query_stats")
    server_timing: bool = default("server_timing")
    query_budget: int | None = default("query_budget")
    slow_query_threshold: float | None = default("slow_query_threshold")
    prometheus: bool = default("prometheus")
    opentelemetry: bool = default("opentelemetry")
    idempotency_ttl: float = default("idempotency_ttl")
    statement_timeout: float | None = default("statement_timeout")
    pgbouncer: bool = default("pgbouncer")
    retry_lock_timeouts: bool = default("retry_lock_timeouts")
    manual_commit: ManualCommit = default("manual_commit")
    session_class: SessionClass = default("session_class")
    replicas: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=default("replicas"),
        validation_alias=AliasChoices("DATABASE_REPLICA_URLS", "replicas"),
    )
    """``DATABASE_REPLICA_URLS``: replica URLs, comma-separated."""
    max_replica_lag: float = default("max_replica_lag")
    replica_reads: ReplicaReads = default("replica_reads")
    replica_check_interval: float = default("replica_check_interval")
    bookmark_header: str = default("bookmark_header")
    bookmark_cookie: str | None = default("bookmark_cookie")
    bookmark_wait: float = default("bookmark_wait")
    served_by_header: str | None = default("served_by_header")

    @field_validator("replicas", mode="before")
    @classmethod
    def _split_replica_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(url.strip() for url in value.split(",") if url.strip())
        return value

    def to_config(self, **overrides: Any) -> DatabaseConfig:
        """The configuration these settings describe; ``overrides`` win (as `Database`
        keyword options)."""
        values: dict[str, Any] = self.model_dump()
        for name in ("url", "sync_url", "async_url"):
            secret = getattr(self, name)
            values[name] = secret.get_secret_value() if secret is not None else None
        values["replicas"] = tuple(url.get_secret_value() for url in self.replicas)
        values.update(overrides)
        return DatabaseConfig.from_options(values)
