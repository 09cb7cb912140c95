"""Service settings, read once from the environment at start-up."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sessionscope import DatabaseConfig, DatabaseSettings

DEFAULT_DATABASE_URL = "sqlite:///./sessionscope-demo.db"

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class ServiceSettings(BaseSettings):
    """Every knob of the service. Environment variables use the upper-case field name."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: SecretStr = Field(default=SecretStr(DEFAULT_DATABASE_URL))
    """SQLAlchemy URL; a SQLite file next to the working directory by default. Either driver
    flavour works (``postgresql+psycopg`` or ``postgresql+asyncpg`` ...): sessionscope derives
    the other one."""

    database_check_on_startup: bool = DatabaseSettings.model_fields["check_on_startup"].default
    """Refuse to start when the database does not answer. Turn off to start anyway and let
    ``/readyz`` report the outage. Every other ``DATABASE_*`` variable of sessionscope
    (``DATABASE_POOL_SIZE``, ``DATABASE_POOL_TIMEOUT``...) is read by `database_config`."""

    def database_config(self) -> DatabaseConfig:
        """The service's database configuration: sessionscope's own ``DATABASE_*`` variables,
        with this service's URL and start-up check. With ``DATABASE_REPLICA_URLS`` set, GET
        routes read from the replicas (``DATABASE_REPLICA_READS`` defaults to
        ``safe_methods``) and responses carry bookmarks (``X-DB-Bookmark``)."""
        database = DatabaseSettings()
        overrides: dict[str, Any] = {}
        if database.replicas and "replica_reads" not in database.model_fields_set:
            # With DATABASE_REPLICA_URLS set, every GET route reads from a replica: none of
            # the service's GET routes writes.
            overrides["replica_reads"] = "safe_methods"
        return database.to_config(
            url=self.database_url.get_secret_value(),
            check_on_startup=self.database_check_on_startup,
            **overrides,
        )

    max_request_body_bytes: int = Field(default=64 * 1024, ge=1)
    """Largest request body accepted; a larger one is answered 413 before it is parsed. The
    largest valid body, every character escaped in JSON, is below 30 KiB."""

    keep_alive_timeout: int | None = Field(default=None, gt=0)
    """Seconds uvicorn keeps an idle kept-alive connection open. By default 5 s more than the
    longest ``Retry-After`` the service sends (see `keep_alive_seconds`)."""

    def keep_alive_seconds(self, config: DatabaseConfig) -> int:
        """`keep_alive_timeout`, or 5 s more than the longest ``Retry-After`` the service
        sends: a request shed under overload is told to come back after
        ``DATABASE_POOL_TIMEOUT`` (at least ``DATABASE_RETRY_AFTER``). With uvicorn's own 5 s
        and the default 5 s pool wait, a client that waits as told sends its next request on
        its kept-alive connection just as the server closes it, and is reset."""
        if self.keep_alive_timeout is not None:
            return self.keep_alive_timeout
        return config.longest_retry_after + 5

    log_level: LogLevel = "info"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    password_hash_time_cost: int = Field(default=3, ge=1, le=100)
    """Argon2 passes. The three ``password_hash_*`` defaults are pwdlib's (RFC 9106); lower
    them only for tests, where hashing speed matters more than resistance to cracking."""

    password_hash_memory_kib: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)
    password_hash_parallelism: int = Field(default=4, ge=1, le=64)
