"""Prometheus metrics of a database (extra ``prometheus``).

A collector reads `DatabaseStats` when Prometheus scrapes: nothing is recorded through
``prometheus_client`` per request. Series are labelled by database name, and the per-route
ones by method and path template, never by raw path.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ._errors import ConfigurationError, MissingExtraError
from ._stats import DatabaseStats, HistogramStats

METRICS: tuple[tuple[str, str, str, str], ...] = (
    # name, type, labels, help
    (
        "sessionscope_pool_size",
        "gauge",
        "database, flavour",
        "Connections kept open in the pool (pool_size).",
    ),
    (
        "sessionscope_pool_checked_out",
        "gauge",
        "database, flavour",
        "Connections in use.",
    ),
    (
        "sessionscope_pool_idle",
        "gauge",
        "database, flavour",
        "Open connections idle in the pool.",
    ),
    (
        "sessionscope_pool_overflow",
        "gauge",
        "database, flavour",
        "Connections open beyond pool_size.",
    ),
    (
        "sessionscope_pool_waiters",
        "gauge",
        "database, flavour",
        "Requests waiting for a connection slot.",
    ),
    (
        "sessionscope_pool_wait_seconds",
        "histogram",
        "database, method, route",
        "Seconds a request waited for a connection slot.",
    ),
    (
        "sessionscope_connection_hold_seconds",
        "histogram",
        "database, method, route",
        "Seconds a request held its connection, to the end of its unit of work.",
    ),
    (
        "sessionscope_units_total",
        "counter",
        "database, outcome",
        "Request units of work by outcome: commit, rollback, commit_failed.",
    ),
    (
        "sessionscope_commit_failures_total",
        "counter",
        "database, status",
        "Failed COMMITs by the status the client received.",
    ),
    (
        "sessionscope_statements_total",
        "counter",
        "database, method, route",
        "SQL statements of request units (with per-request accounting).",
    ),
    (
        "sessionscope_db_time_seconds_total",
        "counter",
        "database, method, route",
        "Seconds spent in SQL statements of request units (with per-request accounting).",
    ),
    (
        "sessionscope_query_budget_exceeded_total",
        "counter",
        "database",
        "Requests that ran more statements than their query budget.",
    ),
    (
        "sessionscope_slow_queries_total",
        "counter",
        "database",
        "Statements slower than slow_query_threshold.",
    ),
)
"""The metric table of the docs (tests keep the two in step)."""

_HELP = {name: text for name, _, _, text in METRICS}


def _families() -> Any:
    try:
        from prometheus_client import core
    except ImportError:
        raise MissingExtraError(
            'prometheus=True needs prometheus-client: pip install "sessionscope[prometheus]"'
        ) from None
    return core


class StatsCollector:
    """A ``prometheus_client`` collector of the `DatabaseStats` of databases, by name.

    Prometheus identifies a metric by its name alone, so one collector serves every database
    of a registry: their series differ by the ``database`` label."""

    def __init__(self) -> None:
        self._core = _families()
        self._sources: dict[str, Callable[[], DatabaseStats]] = {}

    def add(self, database: str, stats: Callable[[], DatabaseStats]) -> None:
        if database in self._sources:
            raise ConfigurationError(
                f"cannot export Prometheus metrics of database {database!r}: a running app "
                "already exports a database of that name; give each Database its own name "
                "(Database(..., name=...))."
            )
        self._sources[database] = stats

    def remove(self, database: str, stats: Callable[[], DatabaseStats]) -> None:
        if self._sources.get(database) == stats:
            del self._sources[database]

    def collect(self) -> Iterator[Any]:
        core = self._core
        sources = sorted(self._sources.items())
        pool_labels = ["database", "flavour"]
        gauges = {
            name: core.GaugeMetricFamily(name, _HELP[name], labels=pool_labels)
            for name in (
                "sessionscope_pool_size",
                "sessionscope_pool_checked_out",
                "sessionscope_pool_idle",
                "sessionscope_pool_overflow",
                "sessionscope_pool_waiters",
            )
        }
        snapshots = [(database, stats()) for database, stats in sources]
        for database, stats in snapshots:
            for flavour, pool in sorted(stats.pools.items()):
                labels = [database, flavour]
                if pool.size is not None:
                    gauges["sessionscope_pool_size"].add_metric(labels, pool.size)
                gauges["sessionscope_pool_checked_out"].add_metric(labels, pool.checked_out)
                gauges["sessionscope_pool_idle"].add_metric(labels, pool.idle)
                gauges["sessionscope_pool_overflow"].add_metric(labels, pool.overflow)
                gauges["sessionscope_pool_waiters"].add_metric(labels, pool.waiters)
        yield from gauges.values()

        route_labels = ["database", "method", "route"]
        wait = core.HistogramMetricFamily(
            "sessionscope_pool_wait_seconds",
            _HELP["sessionscope_pool_wait_seconds"],
            labels=route_labels,
        )
        hold = core.HistogramMetricFamily(
            "sessionscope_connection_hold_seconds",
            _HELP["sessionscope_connection_hold_seconds"],
            labels=route_labels,
        )
        statements = _counter(core, "sessionscope_statements_total", route_labels)
        db_time = _counter(core, "sessionscope_db_time_seconds_total", route_labels)
        for database, stats in snapshots:
            for route in stats.routes:
                labels = [database, route.method, route.route]
                wait.add_metric(labels, _buckets(route.pool_wait), route.pool_wait.sum)
                hold.add_metric(labels, _buckets(route.hold), route.hold.sum)
                statements.add_metric(labels, route.statements)
                db_time.add_metric(labels, route.db_time)
        yield from (wait, hold, statements, db_time)

        units = _counter(core, "sessionscope_units_total", ["database", "outcome"])
        failures = _counter(core, "sessionscope_commit_failures_total", ["database", "status"])
        budget = _counter(core, "sessionscope_query_budget_exceeded_total", ["database"])
        slow = _counter(core, "sessionscope_slow_queries_total", ["database"])
        for database, stats in snapshots:
            units.add_metric([database, "commit"], stats.commits)
            units.add_metric([database, "rollback"], stats.rollbacks)
            units.add_metric([database, "commit_failed"], sum(stats.commit_failures.values()))
            for status, count in sorted(stats.commit_failures.items()):
                failures.add_metric([database, str(status)], count)
            budget.add_metric([database], stats.query_budget_exceeded)
            slow.add_metric([database], stats.slow_queries)
        yield from (units, failures, budget, slow)


def _counter(core: Any, name: str, labels: list[str]) -> Any:
    # CounterMetricFamily appends "_total" itself.
    return core.CounterMetricFamily(name.removesuffix("_total"), _HELP[name], labels=labels)


def _buckets(histogram: HistogramStats) -> list[tuple[str, float]]:
    return [
        ("+Inf" if math.isinf(bound) else repr(bound), count) for bound, count in histogram.buckets
    ]


_shared: StatsCollector | None = None
_shared_lock = threading.Lock()


def export(database: str, stats: Callable[[], DatabaseStats]) -> None:
    """Export ``stats`` as database ``database`` through ``prometheus_client``'s default
    registry (one collector for every database), until `unexport`."""
    global _shared
    with _shared_lock:
        if _shared is None:
            collector = StatsCollector()
            collector._core.REGISTRY.register(collector)
            _shared = collector
        _shared.add(database, stats)


def unexport(database: str, stats: Callable[[], DatabaseStats]) -> None:
    with _shared_lock:
        if _shared is not None:
            _shared.remove(database, stats)
