"""Watching units of work: per-request statement accounting, the query budget (N+1
detector), the slow-query log, ``Server-Timing``, and the per-route metrics of `_stats`.

Each `Runtime` has one `Observer`. A request's unit of work gets an `Observation` when its
session is about to open (after the wait for a connection slot) and hands it back when the
unit ends; statements are attributed to it through the dialect's ``do_execute`` events of
the runtime's engines, which are listened to only when a feature needs them. SQL text is logged
as the driver received it, with placeholders: parameters never appear.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Engine

from ._config import DatabaseConfig
from ._errors import QueryBudgetExceededError
from ._stats import UnitMetrics

slow_query_logger = logging.getLogger("sessionscope.slow_query")
query_budget_logger = logging.getLogger("sessionscope.query_budget")

NO_ROUTE = "-"
"""The route of statements outside requests (scripts, `db.transaction()` in workers)."""


@dataclass(frozen=True)
class QueryStats:
    """The statements of one unit of work so far (see `query_stats`)."""

    statements: int
    """SQL statements sent."""
    duration: float
    """Seconds spent in them, from the cursor's execute to its return."""
    rows: int
    """Rows the driver reported as returned or affected (``cursor.rowcount``)."""


class Observation:
    """What one request's unit of work did; made by `Observer.open`."""

    __slots__ = (
        "budget",
        "db_time",
        "method",
        "opened_at",
        "pool_wait",
        "repeats",
        "route",
        "rows",
        "span",
        "started_ns",
        "statements",
    )

    def __init__(self, method: str, route: str, pool_wait: float, budget: int | None) -> None:
        self.method = method
        self.route = route
        self.pool_wait = pool_wait
        self.budget = budget
        self.opened_at = time.perf_counter()
        self.statements = 0
        self.db_time = 0.0
        self.rows = 0
        self.repeats: dict[str, int] | None = {} if budget is not None else None
        self.span: Any = None
        """The OpenTelemetry context the unit's span goes under, when it gets one."""
        self.started_ns = 0

    def query_stats(self) -> QueryStats:
        return QueryStats(statements=self.statements, duration=self.db_time, rows=self.rows)

    def most_repeated(self) -> tuple[str, int]:
        """The statement sent most often and how often (budget checks only)."""
        if not self.repeats:
            return "", 0
        statement = max(self.repeats, key=self.repeats.__getitem__)
        return statement, self.repeats[statement]


current_observation: contextvars.ContextVar[Observation | None] = contextvars.ContextVar(
    "sessionscope_current_observation", default=None
)


def observation_var() -> contextvars.ContextVar[Observation | None]:
    """A context variable for the current observation of one database's units."""
    return contextvars.ContextVar("sessionscope_database_observation", default=None)


BudgetWatcher = Callable[[str], None]
_budget_watchers: list[BudgetWatcher] = []


@contextmanager
def watch_query_budgets(watcher: BudgetWatcher) -> Iterator[None]:
    """Call ``watcher`` with the message of every exceeded query budget while inside."""
    _budget_watchers.append(watcher)
    try:
        yield
    finally:
        _budget_watchers.remove(watcher)


@contextmanager
def fail_on_query_budget() -> Iterator[list[str]]:
    """Collect every exceeded query budget inside the block (the warnings' messages) and raise
    `QueryBudgetExceededError` at its end if there was one: an N+1 regression fails the test.

    The budgets are those of the databases (``query_budget``) and routes
    (``unit_of_work(query_budget=...)``) under test."""
    violations: list[str] = []
    with watch_query_budgets(violations.append):
        yield violations
    if violations:
        raise QueryBudgetExceededError("\n".join(violations))


def route_of(scope: Any) -> str:
    """The path template of a request's route (never the raw path: bounded cardinality)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else "(unmatched)"


class UnitSpanRecorder(Protocol):
    """What records the units' OpenTelemetry spans (`_otel.UnitSpans`)."""

    def parent(self, observation: Observation) -> Any: ...

    def record(
        self, observation: Observation, committed: bool, failed_status: int | None
    ) -> None: ...


class Observer:
    """The observation of the units of work of one runtime."""

    def __init__(
        self,
        config: DatabaseConfig,
        current: contextvars.ContextVar[Observation | None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = UnitMetrics()
        self.slow_threshold = config.slow_query_threshold
        self.counts_statements = bool(
            config.query_stats
            or config.server_timing
            or config.query_budget is not None
            or config.opentelemetry
        )
        self.observes = config.metrics or self.counts_statements
        # The statement listeners find the request's observation through context variables;
        # without them (metrics only) nothing reads those variables, and setting them costs.
        self.listens = self.counts_statements or self.slow_threshold is not None
        self.tracer: UnitSpanRecorder | None = None
        """The unit spans, when `opentelemetry` is on and the runtime has started."""
        self._engines: list[Engine] = []
        # Statements go to the observation of their database's unit (a request that uses two
        # databases has one for each), whichever of the database's runtimes runs them: a
        # test binding's connection comes from another runtime than the app's.
        self._current = current if current is not None else observation_var()

    # -- engines ----------------------------------------------------------------------------

    def watch(self, engine: Engine) -> None:
        """Time ``engine``'s statements, when a feature needs them.

        The hooks are the dialect's ``do_execute`` events, which run the driver's execute
        themselves, and not the connection's cursor events: an engine with connection event
        listeners makes each of its connections dispatch every connection event (BEGIN,
        COMMIT, each execute) through the engine's listeners, which cost more than the
        statements' accounting itself. Dialect events are looked at only where a cursor
        executes."""
        if not self.listens:
            return
        event.listen(engine, "do_execute", self._do_execute)
        event.listen(engine, "do_executemany", self._do_executemany)
        event.listen(engine, "do_execute_no_params", self._do_execute_no_params)
        self._engines.append(engine)

    def unwatch(self) -> None:
        engines, self._engines = self._engines, []
        for engine in engines:
            event.remove(engine, "do_execute", self._do_execute)
            event.remove(engine, "do_executemany", self._do_executemany)
            event.remove(engine, "do_execute_no_params", self._do_execute_no_params)

    # A hook returns True: it has executed the statement, the dialect does not again. A
    # statement that fails raises out of it unaccounted, as before the hooks.

    def _do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        started = time.perf_counter()
        context.dialect.do_execute(cursor, statement, parameters, context)
        self._account(cursor, statement, time.perf_counter() - started)
        return True

    def _do_executemany(self, cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        started = time.perf_counter()
        context.dialect.do_executemany(cursor, statement, parameters, context)
        self._account(cursor, statement, time.perf_counter() - started)
        return True

    def _do_execute_no_params(self, cursor: Any, statement: str, context: Any) -> bool:
        started = time.perf_counter()
        context.dialect.do_execute_no_params(cursor, statement, context)
        self._account(cursor, statement, time.perf_counter() - started)
        return True

    def _account(self, cursor: Any, statement: str, elapsed: float) -> None:
        observation = self._current.get()
        if observation is not None:
            observation.statements += 1
            observation.db_time += elapsed
            rowcount = cursor.rowcount
            if rowcount is not None and rowcount > 0:
                observation.rows += rowcount
            repeats = observation.repeats
            if repeats is not None:
                repeats[statement] = repeats.get(statement, 0) + 1
        threshold = self.slow_threshold
        if threshold is not None and elapsed >= threshold:
            self.metrics.slow_queries += 1
            route = NO_ROUTE if observation is None else f"{observation.method} {observation.route}"
            slow_query_logger.warning(
                "slow query: %.1f ms on %s: %s",
                elapsed * 1000,
                route,
                one_line(statement),
                extra={"db_duration_ms": round(elapsed * 1000, 1), "route": route},
            )

    # -- request units ----------------------------------------------------------------------

    def open(self, scope: Any, pool_wait: float, budget: int | None) -> Observation | None:
        """Start observing a request's unit of work whose slot was just taken."""
        if not self.observes:
            return None
        if budget is None:
            budget = self.config.query_budget
        observation = Observation(scope.get("method", ""), route_of(scope), pool_wait, budget)
        if self.tracer is not None:
            observation.span = self.tracer.parent(observation)
        if self.listens:
            self._current.set(observation)
            current_observation.set(observation)
        return observation

    def end(self, observation: Observation, committed: bool, failed_status: int | None) -> None:
        """Record a unit that has ended (committed or rolled back, and closed)."""
        held = time.perf_counter() - observation.opened_at
        metrics = self.metrics
        metrics.record_outcome(committed, failed_status)
        metrics.record(
            observation.method,
            observation.route,
            wait=observation.pool_wait,
            hold=held,
            statements=observation.statements,
            db_time=observation.db_time,
        )
        budget = observation.budget
        if budget is not None and observation.statements > budget:
            metrics.query_budget_exceeded += 1
            self._report_budget(observation, budget)
        tracer = self.tracer
        if tracer is not None and observation.span is not None:
            tracer.record(observation, committed, failed_status)

    def _report_budget(self, observation: Observation, budget: int) -> None:
        statement, times = observation.most_repeated()
        route = f"{observation.method} {observation.route}"
        message = (
            f"query budget exceeded on {route}: {observation.statements} statements "
            f"(budget {budget}); sent {times} times: {one_line(statement)}"
        )
        query_budget_logger.warning(
            "%s",
            message,
            extra={"route": route, "db_statements": observation.statements},
        )
        for watcher in list(_budget_watchers):
            watcher(message)


def one_line(statement: str) -> str:
    """SQL text on one log line."""
    return " ".join(statement.split())


def server_timing(observation: Observation) -> bytes:
    """The ``Server-Timing`` header value of a unit: ``db;dur=12.3;desc="4 queries"``."""
    count = observation.statements
    noun = "query" if count == 1 else "queries"
    return f'db;dur={observation.db_time * 1000:.1f};desc="{count} {noun}"'.encode()


def with_server_timing(message: Any, observation: Observation) -> Any:
    """An ``http.response.start`` message with the unit's ``Server-Timing`` added (a copy:
    the app may reuse its own message)."""
    headers = [*message.get("headers", ()), (b"server-timing", server_timing(observation))]
    return {**message, "headers": headers}


def query_stats() -> QueryStats | None:
    """The statements, database time and rows of the current request's unit of work so far;
    ``None`` outside a request that uses the database, or when accounting is off (it is on
    with ``query_stats``, ``server_timing``, ``query_budget`` or ``opentelemetry``)."""
    observation = current_observation.get()
    return observation.query_stats() if observation is not None else None


class QueryStatsLogFilter(logging.Filter):
    """Adds the current request's database figures to log records, for access logs::

        handler.addFilter(QueryStatsLogFilter())
        # format: "%(message)s db=%(db_statements)d/%(db_time_ms).1fms"

    Sets ``db_statements``, ``db_time_ms`` and ``db_rows`` (0 outside requests that use the
    database). Uvicorn writes its access line while the response starts, after sessionscope
    has ended the unit of work, so the figures include the COMMIT.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        observation = current_observation.get()
        if observation is None:
            record.db_statements, record.db_time_ms, record.db_rows = 0, 0.0, 0
        else:
            record.db_statements = observation.statements
            record.db_time_ms = round(observation.db_time * 1000, 1)
            record.db_rows = observation.rows
        return True
