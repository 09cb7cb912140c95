"""Contract G1 in process, on every backend, sync and async: per-request accounting,
``Server-Timing``, the query budget (N+1 detector), the slow-query log, `Database.stats` and
the Prometheus collector. The live-server and OpenTelemetry tests are in
``tests/server/test_server_metrics.py`` and ``tests/test_otel.py``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import ForeignKey, String, select, text
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
)

from sessionscope import (
    AsyncDbSession,
    ConfigurationError,
    Database,
    DatabaseSettings,
    DbSession,
    QueryBudgetExceededError,
    QueryStatsLogFilter,
    query_stats,
    unit_of_work,
)
from sessionscope._prometheus import METRICS, StatsCollector
from sessionscope.testing import fail_on_query_budget

from .conftest import require_server

PARENTS = 6
BUDGET = 5


class Base(AsyncAttrs, DeclarativeBase):
    pass


class ObsParent(Base):
    __tablename__ = "obs_parents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    children: Mapped[list[ObsChild]] = relationship(order_by="ObsChild.id")


class ObsChild(Base):
    __tablename__ = "obs_children"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("obs_parents.id"))
    name: Mapped[str] = mapped_column(String(50))


def stats_now() -> dict[str, Any]:
    """`query_stats()` and what `QueryStatsLogFilter` puts on a log record, mid-request."""
    found = query_stats()
    assert found is not None
    record = logging.LogRecord("access", logging.INFO, __file__, 1, "GET /stats", None, None)
    assert QueryStatsLogFilter().filter(record)
    return {
        "statements": found.statements,
        "rows": found.rows,
        # The record's time is the unit's, in milliseconds to 0.1 (two SQLite statements
        # can take less than 0.05 ms: compare, do not expect it above 0).
        "logged": [
            record.db_statements,
            record.db_rows,
            found.duration > 0 and record.db_time_ms == round(found.duration * 1000, 1),
        ],
    }


def build(db: Database, flavour: str) -> FastAPI:
    """The same routes as ``def`` + `DbSession` or ``async def`` + `AsyncDbSession`."""
    app = FastAPI(lifespan=db.lifespan)

    def summary(parents: Any) -> list[dict[str, Any]]:
        return [{"name": p.name, "children": [c.name for c in p.children]} for p in parents]

    if flavour == "sync":

        @app.get("/parents/lazy")
        def lazy(session: DbSession) -> list[dict[str, Any]]:
            # Each parent's children load on first access: one SELECT per parent.
            return summary(session.scalars(select(ObsParent).order_by(ObsParent.id)))

        @app.get("/parents/lazy-allowed", dependencies=[unit_of_work(query_budget=100)])
        def lazy_allowed(session: DbSession) -> list[dict[str, Any]]:
            return summary(session.scalars(select(ObsParent).order_by(ObsParent.id)))

        @app.get("/parents/fixed")
        def fixed(session: DbSession) -> list[dict[str, Any]]:
            query = select(ObsParent).options(selectinload(ObsParent.children))
            return summary(session.scalars(query.order_by(ObsParent.id)))

        @app.get("/stats")
        def stats(session: DbSession) -> dict[str, Any]:
            session.scalars(select(ObsParent)).all()
            return stats_now()

        @app.post("/parents", status_code=201)
        def create(name: str, session: DbSession) -> dict[str, str]:
            session.add(ObsParent(name=name))
            session.flush()
            if name == "refused":
                raise HTTPException(400, "refused")
            return {"name": name}

    else:

        @app.get("/parents/lazy")
        async def lazy(session: AsyncDbSession) -> list[dict[str, Any]]:
            parents = (await session.scalars(select(ObsParent).order_by(ObsParent.id))).all()
            for parent in parents:
                await parent.awaitable_attrs.children
            return summary(parents)

        @app.get("/parents/lazy-allowed", dependencies=[unit_of_work(query_budget=100)])
        async def lazy_allowed(session: AsyncDbSession) -> list[dict[str, Any]]:
            parents = (await session.scalars(select(ObsParent).order_by(ObsParent.id))).all()
            for parent in parents:
                await parent.awaitable_attrs.children
            return summary(parents)

        @app.get("/parents/fixed")
        async def fixed(session: AsyncDbSession) -> list[dict[str, Any]]:
            query = select(ObsParent).options(selectinload(ObsParent.children))
            return summary(await session.scalars(query.order_by(ObsParent.id)))

        @app.get("/stats")
        async def stats(session: AsyncDbSession) -> dict[str, Any]:
            (await session.scalars(select(ObsParent))).all()
            return stats_now()

        @app.post("/parents", status_code=201)
        async def create(name: str, session: AsyncDbSession) -> dict[str, str]:
            session.add(ObsParent(name=name))
            await session.flush()
            if name == "refused":
                raise HTTPException(400, "refused")
            return {"name": name}

    @app.get("/nodb")
    async def nodb() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
def tables(database_url: str) -> Iterator[None]:
    setup = Database(database_url)
    engine = setup.sync_engine
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with setup.transaction() as session:
        for number in range(PARENTS):
            parent = ObsParent(name=f"p{number}")
            parent.children = [ObsChild(name=f"c{number}-{k}") for k in range(2)]
            session.add(parent)
    yield
    Base.metadata.drop_all(engine)
    setup.close()


def serve(database_url: str, flavour: str, **options: Any) -> TestClient:
    db = Database(database_url, **options)
    return TestClient(build(db, flavour), raise_server_exceptions=False)


PLACEHOLDER = re.compile(r"\?|%\(\w+\)s|%s|\$1|:\w+")


def budget_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sessionscope.query_budget"]


# -- query budget (N+1) -----------------------------------------------------------------------


@pytest.mark.usefixtures("tables")
def test_n_plus_one_trips_the_budget_naming_the_repeated_statement(
    database_url: str, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "sessionscope")
    with serve(database_url, flavour, query_budget=BUDGET) as client:
        assert client.get("/parents/lazy").status_code == 200
        [warning] = budget_warnings(caplog)
        message = warning.getMessage()
        assert message.startswith("query budget exceeded on GET /parents/lazy: ")
        assert f"(budget {BUDGET}); sent {PARENTS} times: SELECT" in message
        repeated = message.split(" times: ", 1)[1]
        assert "obs_children" in repeated
        assert PLACEHOLDER.search(repeated), repeated  # the SQL text, parameters hidden
        assert "p0" not in message

        caplog.clear()
        assert client.get("/parents/fixed").status_code == 200
        assert client.get("/parents/lazy-allowed").status_code == 200  # its own budget
        assert budget_warnings(caplog) == []
        stats = _db_of(client).stats()
        assert stats.query_budget_exceeded == 1


@pytest.mark.usefixtures("tables")
def test_fail_on_query_budget_raises_for_n_plus_one_only(database_url: str, flavour: str) -> None:
    with serve(database_url, flavour, query_budget=BUDGET) as client:
        with fail_on_query_budget() as violations:
            assert client.get("/parents/fixed").status_code == 200
        assert violations == []
        with (
            pytest.raises(QueryBudgetExceededError, match="GET /parents/lazy: "),
            fail_on_query_budget(),
        ):
            client.get("/parents/lazy")


def test_budget_must_not_be_negative() -> None:
    with pytest.raises(ConfigurationError, match="query_budget"):
        Database("sqlite://", query_budget=-1)
    with pytest.raises(ConfigurationError, match="query_budget"):
        unit_of_work(query_budget=-1)
    with pytest.raises(ConfigurationError, match="slow_query_threshold"):
        Database("sqlite://", slow_query_threshold=-1.0)


# -- per-request accounting -------------------------------------------------------------------

SERVER_TIMING = re.compile(r'^db;dur=(\d+\.\d);desc="(\d+) quer(?:y|ies)"$')


@pytest.mark.usefixtures("tables")
def test_server_timing_header_counts_the_statements(database_url: str, flavour: str) -> None:
    with serve(database_url, flavour, server_timing=True) as client:
        fixed = client.get("/parents/fixed")
        lazy = client.get("/parents/lazy")
        nodb = client.get("/nodb")
    fixed_match = SERVER_TIMING.match(fixed.headers["server-timing"])
    lazy_match = SERVER_TIMING.match(lazy.headers["server-timing"])
    assert fixed_match, fixed.headers
    assert lazy_match, lazy.headers
    # selectinload: two SELECTs (plus a BEGIN where the dialect sends one); lazy: one per parent
    # more.
    assert int(lazy_match[2]) - int(fixed_match[2]) == PARENTS - 1
    assert "server-timing" not in nodb.headers


@pytest.mark.usefixtures("tables")
def test_server_timing_is_off_by_default(database_url: str, flavour: str) -> None:
    with serve(database_url, flavour) as client:
        assert "server-timing" not in client.get("/parents/fixed").headers


@pytest.mark.usefixtures("tables")
def test_query_stats_in_the_endpoint_and_in_log_records(database_url: str, flavour: str) -> None:
    with serve(database_url, flavour, query_stats=True) as client:
        body = client.get("/stats").json()
    assert body["statements"] >= 1
    assert body["rows"] in (0, PARENTS)  # some drivers report no rowcount for SELECT
    assert body["logged"] == [body["statements"], body["rows"], True]

    record = logging.LogRecord("access", logging.INFO, __file__, 1, "GET /", None, None)
    assert QueryStatsLogFilter().filter(record)
    assert (record.db_statements, record.db_time_ms, record.db_rows) == (0, 0.0, 0)


def test_query_stats_is_none_outside_requests() -> None:
    assert query_stats() is None


# -- slow-query log ---------------------------------------------------------------------------


@pytest.mark.usefixtures("tables")
def test_slow_query_log_names_route_and_sql_without_parameters(
    database_url: str, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "sessionscope.slow_query")
    with serve(database_url, flavour, slow_query_threshold=0.0) as client:
        assert client.get("/parents/lazy").status_code == 200
        slow = [r for r in caplog.records if r.name == "sessionscope.slow_query"]
        children = [r for r in slow if "obs_children" in r.getMessage()]
        assert len(children) == PARENTS
        message = children[0].getMessage()
        assert re.match(r"slow query: \d+\.\d ms on GET /parents/lazy: SELECT ", message)
        assert PLACEHOLDER.search(message)
        assert children[0].route == "GET /parents/lazy"  # type: ignore[attr-defined]
        assert _db_of(client).stats().slow_queries == len(slow)

    caplog.clear()
    with serve(database_url, flavour, slow_query_threshold=60.0) as client:
        assert client.get("/parents/lazy").status_code == 200
    assert [r for r in caplog.records if r.name == "sessionscope.slow_query"] == []


# -- stats ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("tables")
def test_stats_count_outcomes_and_routes(database_url: str, flavour: str) -> None:
    with serve(database_url, flavour, query_stats=True) as client:
        db = _db_of(client)
        assert client.post("/parents", params={"name": "kept"}).status_code == 201
        assert client.post("/parents", params={"name": "refused"}).status_code == 400
        assert client.get("/parents/fixed").status_code == 200
        assert client.get("/nodb").status_code == 200
        stats = db.stats()
    assert (stats.commits, stats.rollbacks, dict(stats.commit_failures)) == (2, 1, {})
    pool = stats.pools[flavour]
    assert pool.checked_out == 0
    assert pool.idle >= 1
    assert pool.waiters == 0
    posts = stats.route("POST", "/parents")
    gets = stats.route("GET", "/parents/fixed")
    assert posts is not None
    assert gets is not None
    assert (posts.units, posts.hold.count, posts.pool_wait.count) == (2, 2, 2)
    assert gets.units == 1
    assert gets.statements >= 2
    assert gets.hold.sum > 0
    assert gets.hold.buckets[-1] == (float("inf"), 1)
    assert stats.route("GET", "/nodb") is None  # never touched the database


@pytest.mark.usefixtures("tables")
def test_stats_without_metrics_record_nothing(database_url: str, flavour: str) -> None:
    with serve(database_url, flavour, metrics=False) as client:
        assert client.get("/parents/fixed").status_code == 200
        stats = _db_of(client).stats()
    assert (stats.commits, stats.routes) == (0, ())
    assert stats.pools[flavour].checked_out == 0


# -- Prometheus -------------------------------------------------------------------------------


@pytest.mark.usefixtures("tables")
def test_prometheus_collector_exposes_every_documented_series(
    database_url: str, flavour: str
) -> None:
    with serve(database_url, flavour, query_stats=True) as client:
        db = _db_of(client)
        client.get("/parents/fixed")
        client.post("/parents", params={"name": "refused"})
        registry = CollectorRegistry()
        collector = StatsCollector()
        collector.add("main", db.stats)
        registry.register(collector)
        text = generate_latest(registry).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, kind, _labels, _help in METRICS:
        base = name.removesuffix("_total")
        assert base in families, name
        assert families[base].type == kind
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    route = (("database", "main"), ("method", "GET"), ("route", "/parents/fixed"))
    assert samples[("sessionscope_connection_hold_seconds_count", route)] == 1
    assert samples[("sessionscope_pool_wait_seconds_count", route)] == 1
    units = "sessionscope_units_total"
    assert samples[(units, (("database", "main"), ("outcome", "rollback")))] == 1
    assert samples[(units, (("database", "main"), ("outcome", "commit")))] == 1
    pool = (("database", "main"), ("flavour", flavour))
    assert samples[("sessionscope_pool_checked_out", pool)] == 0


def test_prometheus_option_registers_while_the_app_runs(tmp_path: Any) -> None:
    from prometheus_client import REGISTRY

    db = Database(f"sqlite:///{tmp_path / 'p.db'}", prometheus=True, name="registered")
    with TestClient(build(db, "sync")):
        assert REGISTRY.get_sample_value("sessionscope_pool_checked_out", {
            "database": "registered", "flavour": "sync"
        }) == 0  # fmt: skip
        # Another database exports beside it under its own name; the same name is refused.
        other = Database(f"sqlite:///{tmp_path / 'p.db'}", prometheus=True, name="other")
        with TestClient(build(other, "sync")):
            labels = {"database": "other", "flavour": "sync"}
            assert REGISTRY.get_sample_value("sessionscope_pool_size", labels) == 5
        twin = Database(f"sqlite:///{tmp_path / 'p.db'}", prometheus=True, name="registered")
        with (
            pytest.raises(ConfigurationError, match="its own name"),
            TestClient(build(twin, "sync")),
        ):
            pass
    labels = {"database": "registered", "flavour": "sync"}
    assert REGISTRY.get_sample_value("sessionscope_pool_size", labels) is None


def test_settings_read_the_observability_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_SERVER_TIMING", "true")
    monkeypatch.setenv("DATABASE_QUERY_BUDGET", "25")
    monkeypatch.setenv("DATABASE_SLOW_QUERY_THRESHOLD", "0.2")
    monkeypatch.setenv("DATABASE_METRICS", "false")
    config = DatabaseSettings().to_config()
    assert (config.server_timing, config.query_budget, config.slow_query_threshold) == (
        True,
        25,
        0.2,
    )
    assert config.metrics is False
    assert (config.prometheus, config.opentelemetry, config.query_stats) == (False, False, False)


def _db_of(client: TestClient) -> Database:
    from sessionscope.testing import database_of

    db = database_of(client.app)
    assert db is not None
    return db


def test_every_metric_is_in_the_docs_table() -> None:
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "observability.md").read_text()
    for name, kind, labels, help_text in METRICS:
        labelled = ", ".join(f"`{label}`" for label in labels.split(", "))
        row = f"| `{name}` | {kind} | {labelled} | "
        assert row in page, name
        assert (
            help_text.replace("pool_size", "`pool_size`")
            .replace("slow_query_threshold", "`slow_query_threshold`")
            .split(":")[0]
            in page
        ), name


def test_each_database_of_a_request_counts_its_own_statements(tmp_path: Any) -> None:
    first = Database(f"sqlite:///{tmp_path / 'first.db'}", query_stats=True, name="first")
    second = Database(f"sqlite:///{tmp_path / 'second.db'}", query_stats=True, name="second")
    app = FastAPI(lifespan=first.lifespan)
    second.init_app(app)

    @app.get("/both")
    def both(
        one: Session = Depends(first.get_session),
        two: Session = Depends(second.get_session),
    ) -> None:
        for _ in range(3):
            one.execute(text("SELECT 1"))  # after the second session opened
        two.execute(text("SELECT 2"))

    with TestClient(app) as client:
        assert client.get("/both").status_code == 200
        counts = {}
        for db in (first, second):
            route = db.stats().route("GET", "/both")
            assert route is not None
            counts[db.name] = route.statements
    # Each counts its BEGIN (SQLite) and its own SELECTs.
    assert counts == {"first": 4, "second": 2}


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_the_accounting_adds_no_connection_event_to_the_engines(server: str) -> None:
    # Connection events on an engine make every connection dispatch each of its events (BEGIN,
    # COMMIT, every execute) through the engine's listeners: the statements are timed through
    # the dialect's do_execute events instead, looked at only where a cursor executes.
    db = Database(require_server(server), query_stats=True, slow_query_threshold=60.0)
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/count")
    async def count(session: AsyncDbSession) -> int:
        await session.execute(text("SELECT 1"))
        await session.execute(text("SELECT 2"))
        stats = query_stats()
        assert stats is not None
        return stats.statements

    with TestClient(app) as client:
        assert client.get("/count").json() == 2
        engines = [db.sync_engine, db.async_engine.sync_engine]
        assert [engine._has_events for engine in engines] == [False, False]
        assert all(engine.dialect._has_events for engine in engines)
