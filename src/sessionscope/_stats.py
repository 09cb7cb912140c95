"""Pool and unit-of-work statistics: what `Database.stats` returns and what the runtime keeps.

Each app's `Runtime` keeps one `UnitMetrics`. The request machinery records into it once per
unit of work, when the unit ends (outcome, connection-slot wait, connection hold time, per
route template and method); the pool figures are read from the pools and the connection
slots only when someone asks. Recording is a few integer additions: cheap enough to leave on.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._slots import ConnectionSlots

BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of the wait and hold histograms; ``+Inf`` follows."""


@dataclass(frozen=True)
class HistogramStats:
    """A histogram of durations in seconds, as Prometheus keeps one."""

    count: int
    """Observations."""
    sum: float
    """Sum of the observed seconds."""
    buckets: tuple[tuple[float, int], ...]
    """``(upper bound, observations <= bound)``, cumulative; the last bound is ``inf``."""


@dataclass(frozen=True)
class RouteStats:
    """The request units of work of one route (method and path template)."""

    method: str
    route: str
    """The path template (``/items/{item_id}``), never the raw path."""
    units: int
    """Units of work that used the database."""
    pool_wait: HistogramStats
    """Seconds each waited for a connection slot."""
    hold: HistogramStats
    """Seconds each held its connection slot: from the slot (or session) to the end of the
    unit (COMMIT or ROLLBACK and close)."""
    statements: int
    """SQL statements sent (counted when per-request accounting is on, else 0)."""
    db_time: float
    """Seconds spent in those statements (counted when per-request accounting is on)."""


@dataclass(frozen=True)
class PoolStats:
    """One connection pool and the requests waiting for it, now."""

    size: int | None
    """``pool_size`` (``None`` for a pool without a fixed size, such as SQLite ``:memory:``)."""
    checked_out: int
    """Connections in use."""
    idle: int
    """Open connections waiting in the pool (spare overflow connections included)."""
    overflow: int
    """Connections open beyond ``pool_size``."""
    waiters: int
    """Requests waiting for a connection slot."""
    shed: int = 0
    """Requests answered 503 at once, since the start, because the queue for connections
    could not drain within ``pool_timeout`` (``shed_overload``)."""


@dataclass(frozen=True)
class DatabaseStats:
    """What the units of work of one app's database have done since the app started."""

    pools: Mapping[str, PoolStats]
    """By flavour (``"sync"``, ``"async"``): the pools that exist."""
    commits: int
    """Request units that committed (read-only ones included: they end without a COMMIT)."""
    rollbacks: int
    """Request units that rolled back (by the commit policy, an error, or a cancellation)."""
    commit_failures: Mapping[int, int]
    """Failed COMMITs by the status the client received (409, 503, 500)."""
    routes: tuple[RouteStats, ...]
    query_budget_exceeded: int
    """Requests that ran more statements than their query budget."""
    slow_queries: int
    """Statements slower than ``slow_query_threshold``."""

    def route(self, method: str, route: str) -> RouteStats | None:
        """The statistics of one route, e.g. ``stats.route("GET", "/items/{item_id}")``."""
        for found in self.routes:
            if found.method == method and found.route == route:
                return found
        return None


class Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def snapshot(self) -> HistogramStats:
        cumulative = []
        running = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return HistogramStats(count=running, sum=self.total, buckets=tuple(cumulative))


class _Route:
    __slots__ = ("db_time", "hold", "statements", "wait")

    def __init__(self) -> None:
        self.wait = Histogram()
        self.hold = Histogram()
        self.statements = 0
        self.db_time = 0.0


class UnitMetrics:
    """The counters of one runtime. Written on the event loop only (where units end)."""

    def __init__(self) -> None:
        self.commits = 0
        self.rollbacks = 0
        self.commit_failures: dict[int, int] = {}
        self.query_budget_exceeded = 0
        self.slow_queries = 0
        self._routes: dict[tuple[str, str], _Route] = {}

    def record(
        self,
        method: str,
        route: str,
        *,
        wait: float,
        hold: float,
        statements: int,
        db_time: float,
    ) -> None:
        key = (method, route)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = _Route()
        found.wait.observe(wait)
        found.hold.observe(hold)
        found.statements += statements
        found.db_time += db_time

    def record_outcome(self, committed: bool, failed_status: int | None) -> None:
        if failed_status is not None:
            self.commit_failures[failed_status] = self.commit_failures.get(failed_status, 0) + 1
        elif committed:
            self.commits += 1
        else:
            self.rollbacks += 1

    def snapshot(self, pools: Mapping[str, PoolStats]) -> DatabaseStats:
        routes = tuple(
            RouteStats(
                method=method,
                route=route,
                units=found.hold.snapshot().count,
                pool_wait=found.wait.snapshot(),
                hold=found.hold.snapshot(),
                statements=found.statements,
                db_time=found.db_time,
            )
            for (method, route), found in sorted(self._routes.items())
        )
        return DatabaseStats(
            pools=dict(pools),
            commits=self.commits,
            rollbacks=self.rollbacks,
            commit_failures=dict(self.commit_failures),
            routes=routes,
            query_budget_exceeded=self.query_budget_exceeded,
            slow_queries=self.slow_queries,
        )


def pool_stats(pool: Any, slots: ConnectionSlots | None) -> PoolStats:
    """The figures of ``pool`` (a SQLAlchemy pool) and the waiters on ``slots``, now."""
    waiters = slots.waiting if slots is not None else 0
    shed = slots.shed if slots is not None else 0
    size = pool.size() if hasattr(pool, "size") else None
    if not hasattr(pool, "checkedout"):
        # A pool without counters (SQLite :memory:'s one shared connection).
        return PoolStats(size=size, checked_out=0, idle=0, overflow=0, waiters=waiters, shed=shed)
    checked_out = int(pool.checkedout())
    idle = int(pool.checkedin())
    # QueuePool.overflow() starts at -pool_size: connections not opened yet count against it.
    overflow = max(0, int(pool.overflow())) if hasattr(pool, "overflow") else 0
    return PoolStats(
        size=size,
        checked_out=checked_out,
        idle=idle,
        overflow=overflow,
        waiters=waiters,
        shed=shed,
    )
