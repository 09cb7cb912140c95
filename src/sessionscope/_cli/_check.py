"""``sessionscope check``: connect to a database and report what answered.

A `Probe` is the report on one database. The command probes the primary; once a `Database`
has replicas, each gets a `Probe` of its own (with its lag) from `probe` and is printed the
same way.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import threading
import time
from dataclasses import dataclass

import anyio
from sqlalchemy import Connection, Dialect

from sessionscope import Database, DatabaseUnavailableError, MissingDriverError

from ._target import describe_failure, is_async


@dataclass(frozen=True)
class Probe:
    """What answered at one database URL."""

    url: str
    """The URL, password masked."""
    dialect: str
    driver: str
    server_version: str
    round_trips: tuple[float, ...]
    """Seconds taken by each ``SELECT 1``, on one connection."""

    @property
    def latency(self) -> float:
        """The median round trip, in seconds."""
        return statistics.median(self.round_trips)


def probe(db: Database, *, samples: int, timeout: float) -> Probe:
    """Connect to ``db``'s primary URL with its own driver (sync or async) and time
    ``samples`` round trips of ``SELECT 1``. An unreachable database, or one that does not
    answer within ``timeout`` seconds, raises `DatabaseUnavailableError`; a driver that is
    not installed, `MissingDriverError`. The database's engines are disposed of on return."""
    try:
        if is_async(db):

            async def in_time() -> Probe:
                try:
                    with anyio.fail_after(timeout):
                        return await _probe_async(db, samples)
                finally:
                    await db.shutdown()

            return anyio.run(in_time)
        return _probe_sync(db, samples, timeout)
    except MissingDriverError:
        raise
    except (TimeoutError, concurrent.futures.TimeoutError):
        raise DatabaseUnavailableError(
            f"the database at {db.url} did not answer within {timeout:g} s"
        ) from None
    except Exception as error:  # every driver's connection errors
        raise DatabaseUnavailableError(
            f"cannot reach the database at {db.url}: {describe_failure(error, db)}"
        ) from None


def _probe_sync(db: Database, samples: int, timeout: float) -> Probe:
    # A sync driver blocks its thread while it connects, beyond any timeout: it runs in a
    # daemon thread, left to fail (and dispose of the engine) by itself, so that the command
    # answers in time and exits.
    outcome: concurrent.futures.Future[Probe] = concurrent.futures.Future()

    def run() -> None:
        try:
            engine = db.sync_engine
            try:
                with engine.connect() as connection:
                    round_trips = tuple(_timed(connection) for _ in range(samples))
            finally:
                engine.dispose()
            outcome.set_result(_report(db, connection.dialect, round_trips))
        except BaseException as error:
            outcome.set_exception(error)

    threading.Thread(target=run, name="sessionscope-check", daemon=True).start()
    return outcome.result(timeout)


def _timed(connection: Connection) -> float:
    started = time.perf_counter()
    connection.exec_driver_sql("SELECT 1")
    return time.perf_counter() - started


async def _probe_async(db: Database, samples: int) -> Probe:
    round_trips: list[float] = []
    async with db.async_engine.connect() as connection:
        for _ in range(samples):
            started = time.perf_counter()
            await connection.exec_driver_sql("SELECT 1")
            round_trips.append(time.perf_counter() - started)
    return _report(db, connection.dialect, tuple(round_trips))


def _report(db: Database, dialect: Dialect, round_trips: tuple[float, ...]) -> Probe:
    version = ".".join(str(part) for part in dialect.server_version_info or ())
    if getattr(dialect, "is_mariadb", False):
        version += " (MariaDB)"
    return Probe(
        url=db.url,
        dialect=dialect.name,
        driver=dialect.driver,
        server_version=version or "unknown",
        round_trips=round_trips,
    )


def pool_settings(db: Database) -> str:
    """The pool settings of ``db``'s configuration, as ``name=value`` pairs."""
    config = db.config
    settings = {
        "pool_size": config.pool_size,
        "max_overflow": config.max_overflow,
        "overflow_idle_timeout": config.overflow_idle_timeout,
        "pool_timeout": config.pool_timeout,
        "pool_recycle": config.pool_recycle,
        "ping_after_idle": config.ping_after_idle,
    }
    return ", ".join(
        f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in settings.items()
    )


def render(probe: Probe, db: Database) -> list[str]:
    """The lines ``sessionscope check`` prints for one database."""
    return [
        f"database  {probe.url}",
        f"dialect   {probe.dialect}",
        f"driver    {probe.driver}",
        f"server    {probe.server_version}",
        f"pool      {pool_settings(db)}",
        f"latency   {probe.latency * 1000:.2f} ms "
        f"(median of {len(probe.round_trips)} round trips of SELECT 1)",
    ]
