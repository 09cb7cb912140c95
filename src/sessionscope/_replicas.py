"""Read replicas: their engines, a monitor of each one's replay position, lag and health, and
the choice of a replica for a read-only unit of work.

A monitor task per replica asks it ``pg_last_wal_replay_lsn()`` a few times a second (every
``replica_check_interval``), and one more task samples the primary's ``pg_current_wal_lsn()``.
A replica's lag is how long ago the primary first stood past the position the replica has
replayed: zero when it has replayed everything the primary had, the age of the oldest data it
lacks otherwise. This holds on an idle primary (where ``now() - pg_last_xact_replay_timestamp()``
grows without any lag) and for a replica whose stream broke (whose received and replayed
positions agree while both fall behind). Requests never wait for these checks: `pick` reads
what the monitors found.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

import anyio
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from ._bookmarks import format_lsn, parse_lsn
from ._config import DatabaseConfig
from ._engines import create_async_db_engine, create_sync_engine, flavour_urls, mask_url
from ._errors import MissingDriverError, SessionScopeError

logger = logging.getLogger("sessionscope")

Flavour = Literal["sync", "async"]

_REPLICA_QUERY = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
_PRIMARY_QUERY = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END"
)
_READONLY = {"isolation_level": "AUTOCOMMIT"}
_RECHECK = 0.002


@dataclasses.dataclass(frozen=True)
class ReplicaStatus:
    """What the monitor last found about one replica (`Database.replica_status`)."""

    name: str
    """``"replica 1"``, ``"replica 2"``... in the order of `DatabaseConfig.replicas`."""
    url: str
    """The replica's URL, password masked."""
    healthy: bool
    """It answered its last check and is within ``max_replica_lag``: it serves reads."""
    lag: float | None
    """Seconds behind the primary (``None``: not known, the replica did not answer)."""
    replay_lsn: str | None
    """The WAL position it has replayed (``None``: not known)."""
    reason: str | None
    """Why it does not serve reads, when it does not."""


class Replica:
    """One replica: engines of both flavours (read-only binds) and its last known state."""

    def __init__(self, index: int, config: DatabaseConfig) -> None:
        self.name = f"replica {index + 1}"
        self.config = config
        self.sync_url, self.async_url = flavour_urls(config)
        self.binds: dict[Flavour, Engine | AsyncEngine] = {}
        self.engines: list[Engine | AsyncEngine] = []
        self.monitor_engine: Engine | AsyncEngine | None = None
        self.answering = False
        self.in_recovery = True
        self.replay_lsn = -1
        self.lag = math.inf
        self.reason: str | None = "not checked yet"
        self.refreshing: anyio.Event | None = None

    def serves(self, max_lag: float) -> bool:
        return self.answering and self.lag <= max_lag

    def mark_down(self, reason: str) -> None:
        """Stop sending reads here until the monitor finds it answering again."""
        self.answering = False
        self.reason = reason

    def status(self, max_lag: float) -> ReplicaStatus:
        serves = self.serves(max_lag)
        reason = self.reason
        if self.answering and not serves:
            reason = f"{self.lag:.1f} s behind the primary (max_replica_lag={max_lag:g})"
        return ReplicaStatus(
            name=self.name,
            url=mask_url(self.sync_url),
            healthy=serves,
            lag=self.lag if self.answering and math.isfinite(self.lag) else None,
            replay_lsn=format_lsn(self.replay_lsn) if self.replay_lsn >= 0 else None,
            reason=None if serves else reason,
        )


class ReplicaSet:
    """The replicas of one runtime, their monitors, and the choice among them."""

    def __init__(self, config: DatabaseConfig) -> None:
        self._config = config
        self.replicas = [
            Replica(
                index,
                dataclasses.replace(config, url=url, sync_url=None, async_url=None, replicas=()),
            )
            for index, url in enumerate(config.replicas)
        ]
        self._primary_monitor: Engine | AsyncEngine | None = None
        # (first seen, position) of the primary, oldest first, one entry per new position.
        window = 2 * config.max_replica_lag + 1.0
        self._primary_positions: deque[tuple[float, int]] = deque(
            maxlen=math.ceil(window / config.replica_check_interval) + 4
        )
        self._next = 0
        self._tasks: list[asyncio.Task[None]] = []

    # -- the choice ---------------------------------------------------------------------------

    def pick(self, flavour: Flavour, min_lsn: int) -> tuple[Replica, Engine | AsyncEngine] | None:
        """A replica that answers, is within ``max_replica_lag`` and has replayed ``min_lsn``,
        round-robin; ``None``: the primary serves."""
        replicas = self.replicas
        count = len(replicas)
        max_lag = self._config.max_replica_lag
        start = self._next
        for offset in range(count):
            replica = replicas[(start + offset) % count]
            if replica.serves(max_lag) and replica.replay_lsn >= min_lsn:
                bind = replica.binds.get(flavour)
                if bind is not None:
                    self._next = (start + offset + 1) % count
                    return replica, bind
        return None

    async def catch_up(self, min_lsn: int, seconds: float) -> None:
        """Wait up to ``seconds`` until a serving replica has replayed ``min_lsn``, checking
        again as soon as each check ends (checks of one replica are shared by all waiters)."""
        max_lag = self._config.max_replica_lag
        with anyio.move_on_after(seconds):
            checked = False
            while True:
                waiting = [r for r in self.replicas if r.serves(max_lag)]
                if not waiting or any(r.replay_lsn >= min_lsn for r in waiting):
                    return
                if checked:
                    # Replay on loopback takes well under a millisecond; a replica that has
                    # not caught up after one check is not asked again at once.
                    await anyio.sleep(_RECHECK)
                for replica in waiting:
                    await self.refresh(replica)
                checked = True

    def status(self) -> list[ReplicaStatus]:
        return [replica.status(self._config.max_replica_lag) for replica in self.replicas]

    # -- lifecycle ----------------------------------------------------------------------------

    def create_engines(
        self,
        primary_urls: tuple[URL, URL],
        flavours: set[Flavour],
        readonly_options: Mapping[str, Any],
    ) -> None:
        """Engines of ``flavours`` for each replica, with the connection options of read-only
        units (the only ones that run there), and the monitors' own small engines (one
        connection each, autocommit). Connects nothing."""
        for replica in self.replicas:
            for flavour in sorted(flavours):
                try:
                    if flavour == "sync":
                        engine: Engine | AsyncEngine = create_sync_engine(
                            replica.config, replica.sync_url
                        )
                    else:
                        engine = create_async_db_engine(replica.config, replica.async_url)
                except MissingDriverError:
                    continue
                replica.engines.append(engine)
                _refuse_writes_clearly(engine)
                replica.binds[flavour] = (
                    engine.execution_options(**readonly_options) if readonly_options else engine
                )
            replica.monitor_engine = _monitor_engine(
                replica.config, replica.sync_url, replica.async_url
            )
        self._primary_monitor = _monitor_engine(self._config, *primary_urls)

    async def start(self) -> None:
        """Start the monitors (asyncio tasks, until `stop`), after a first check of each."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._sample_primary_once)
            for replica in self.replicas:
                group.start_soon(self.refresh, replica)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sample_primary())]
        self._tasks += [loop.create_task(self._monitor(replica)) for replica in self.replicas]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for engine in self._engines():
            if isinstance(engine, AsyncEngine):
                await engine.dispose()
            else:
                await anyio.to_thread.run_sync(engine.dispose)

    def stop_sync(self) -> None:
        """`stop` without an event loop (scripts): async connections are dropped unclosed."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        for engine in self._engines():
            if isinstance(engine, AsyncEngine):
                engine.sync_engine.dispose(close=False)
            else:
                engine.dispose()

    def after_fork(self) -> None:
        self._tasks = []
        for engine in self._engines():
            sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
            sync_engine.dispose(close=False)

    def _engines(self) -> list[Engine | AsyncEngine]:
        engines: list[Engine | AsyncEngine] = []
        for replica in self.replicas:
            engines += replica.engines
            if replica.monitor_engine is not None:
                engines.append(replica.monitor_engine)
        if self._primary_monitor is not None:
            engines.append(self._primary_monitor)
        return engines

    # -- the monitors -------------------------------------------------------------------------

    async def _monitor(self, replica: Replica) -> None:
        while True:
            await anyio.sleep(self._config.replica_check_interval)
            await self.refresh(replica)

    async def _sample_primary(self) -> None:
        while True:
            await anyio.sleep(self._config.replica_check_interval)
            await self._sample_primary_once()

    async def _sample_primary_once(self) -> None:
        engine = self._primary_monitor
        if engine is None:
            return
        try:
            row = await _query(engine, _PRIMARY_QUERY, self._check_timeout)
        except Exception:
            # The primary is down or failing over: replicas keep the lag they had.
            return
        position = parse_lsn(row[0]) if row and row[0] else None
        positions = self._primary_positions
        if position is not None and (not positions or positions[-1][1] != position):
            positions.append((time.monotonic(), position))

    async def refresh(self, replica: Replica) -> None:
        """Check ``replica`` now; when a check is already running, wait for that one."""
        running = replica.refreshing
        if running is not None:
            await running.wait()
            return
        done = replica.refreshing = anyio.Event()
        try:
            await self._check(replica)
        finally:
            replica.refreshing = None
            done.set()

    async def _check(self, replica: Replica) -> None:
        engine = replica.monitor_engine
        if engine is None:
            return
        was_answering = replica.answering
        try:
            row = await _query(engine, _REPLICA_QUERY, self._check_timeout)
        except Exception as error:
            replica.mark_down(_reason(error, replica.sync_url))
            if was_answering:
                logger.warning("%s stopped answering: %s", replica.name, replica.reason)
            return
        in_recovery, replay = bool(row[0]), parse_lsn(row[1]) if row[1] else None
        replica.in_recovery = in_recovery
        if replay is not None:
            replica.replay_lsn = max(replay, replica.replay_lsn)
        # A promoted replica is a primary now: it lags nothing.
        replica.lag = self._lag(replica.replay_lsn) if in_recovery else 0.0
        replica.reason = None
        replica.answering = True
        if not was_answering:
            logger.info("%s answers (%.2f s behind the primary)", replica.name, replica.lag)

    def _lag(self, replayed: int) -> float:
        now = time.monotonic()
        for seen, position in self._primary_positions:
            if position > replayed:
                return now - seen
        return 0.0

    @property
    def _check_timeout(self) -> float:
        return max(1.0, 4 * self._config.replica_check_interval)


READ_ONLY_SQL_TRANSACTION = "25006"

REPLICA_REFUSES = (
    "this read-only unit of work runs on a replica, which refuses writes and row locks "
    "(SELECT ... FOR UPDATE / FOR SHARE). A route that locks rows writes: declare it "
    "unit_of_work(write=True), or unit_of_work(primary=True) to keep it read-only on the primary"
)


def _refuse_writes_clearly(engine: Engine | AsyncEngine) -> None:
    """Turn PostgreSQL's refusal on a replica (SQLSTATE 25006) into an error naming the fix."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        original = context.original_exception
        if getattr(original, "sqlstate", None) == READ_ONLY_SQL_TRANSACTION:
            raise SessionScopeError(REPLICA_REFUSES) from original


def _monitor_engine(config: DatabaseConfig, sync_url: URL, async_url: URL) -> Engine | AsyncEngine:
    """One autocommit connection for the checks, kept apart from the request pools."""
    monitor_config = dataclasses.replace(
        config,
        pool_size=1,
        max_overflow=0,
        ping_after_idle=None,
        overflow_idle_timeout=0,
        engine_options={},
    )
    engine: Engine | AsyncEngine
    try:
        engine = create_async_db_engine(monitor_config, async_url)
    except MissingDriverError:
        engine = create_sync_engine(monitor_config, sync_url)
    return engine.execution_options(**_READONLY)


async def _query(engine: Engine | AsyncEngine, sql: str, seconds: float) -> Any:
    with anyio.fail_after(seconds):
        if isinstance(engine, AsyncEngine):
            async with engine.connect() as connection:
                return (await connection.exec_driver_sql(sql)).one()
        return await anyio.to_thread.run_sync(_query_sync, engine, sql, abandon_on_cancel=True)


def _query_sync(engine: Engine, sql: str) -> Any:
    with engine.connect() as connection:
        return connection.exec_driver_sql(sql).one()


def _reason(error: BaseException, url: URL) -> str:
    if isinstance(error, TimeoutError):
        return "did not answer in time"
    cause: Any = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else ""
    if url.password:
        text = text.replace(str(url.password), "***")
    return f"{type(cause).__name__}: {text}".rstrip(": ")
