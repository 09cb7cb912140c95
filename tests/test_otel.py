"""OpenTelemetry (contract G1): one unit-of-work span per request, under the request's server
span, with its outcome; beside ``opentelemetry-instrumentation-sqlalchemy`` every statement
has exactly one span. The SDK's in-memory exporter collects the spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sessionscope import Database

from .test_observability import PARENTS, build

UNIT_SPAN = "sessionscope unit of work"

_exporter = InMemorySpanExporter()


@pytest.fixture(scope="module")
def provider() -> TracerProvider:
    """The process's tracer provider (OpenTelemetry allows setting it once per process)."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(SimpleSpanProcessor(_exporter))
        return current
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(_exporter))
    trace.set_tracer_provider(made)
    return made


@pytest.fixture
def spans(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter
    _exporter.clear()


@pytest.fixture
def traced_client(
    database_url: str, flavour: str, provider: TracerProvider, tables: None
) -> Iterator[TestClient]:
    db = Database(database_url, opentelemetry=True)
    app: FastAPI = build(db, flavour)
    instrumentor = SQLAlchemyInstrumentor()
    with TestClient(OpenTelemetryMiddleware(app, tracer_provider=provider)) as client:
        # The app's own engines exist once its lifespan has started.
        engine = db.sync_engine if flavour == "sync" else db.async_engine.sync_engine
        # It declares SQLAlchemy < 2.1; its engine events work on 2.1 all the same.
        instrumentor.instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)
        try:
            yield client
        finally:
            instrumentor.uninstrument()


@pytest.fixture
def tables(database_url: str) -> Iterator[None]:
    from .test_observability import Base, ObsChild, ObsParent

    setup = Database(database_url)
    engine = setup.sync_engine
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with setup.transaction() as session:
        for number in range(PARENTS):
            session.add(ObsParent(name=f"p{number}", children=[ObsChild(name=f"c{number}")]))
    yield
    Base.metadata.drop_all(engine)
    setup.close()


def server_ancestor(span: ReadableSpan, finished: tuple[ReadableSpan, ...]) -> ReadableSpan:
    """The SERVER span above ``span`` (through FastAPI's own dependency spans, if any)."""
    by_id = {s.context.span_id: s for s in finished if s.context is not None}
    current = span
    while current.kind != SpanKind.SERVER:
        assert current.parent is not None, f"{span.name} is not under a server span"
        current = by_id[current.parent.span_id]
    return current


def statement_spans(finished: tuple[ReadableSpan, ...], trace_id: int) -> list[ReadableSpan]:
    """The SQLAlchemy instrumentation's spans of one trace (connect events aside)."""
    return [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT
        and s.context is not None
        and s.context.trace_id == trace_id
        and s.name != "connect"
    ]


def test_one_unit_span_per_request_under_the_server_span(
    traced_client: TestClient, spans: InMemorySpanExporter
) -> None:
    assert traced_client.get("/parents/lazy").status_code == 200
    assert traced_client.post("/parents", params={"name": "refused"}).status_code == 400
    assert traced_client.get("/nodb").status_code == 200
    finished = spans.get_finished_spans()
    units = [s for s in finished if s.name == UNIT_SPAN]
    outcomes: list[Any] = []
    for unit in units:
        assert unit.attributes is not None
        assert unit.context is not None
        route = unit.attributes["http.route"]
        server = server_ancestor(unit, finished)
        assert server.name.endswith(str(route))
        outcomes.append((route, unit.attributes["sessionscope.outcome"]))
        assert "sessionscope.pool_wait_ms" in unit.attributes
        # One span per statement: the instrumentation's, none of sessionscope's.
        statements = statement_spans(finished, unit.context.trace_id)
        assert unit.attributes["db.statement_count"] == len(statements)
    # One unit span per request that used the database, none for the one that did not.
    assert sorted(outcomes) == [("/parents", "rollback"), ("/parents/lazy", "commit")]
    lazy = next(s for s in units if s.attributes and s.attributes["http.route"] == "/parents/lazy")
    assert lazy.context is not None
    assert len(statement_spans(finished, lazy.context.trace_id)) >= PARENTS + 1


def test_no_unit_spans_when_off(
    database_url: str, flavour: str, provider: TracerProvider, tables: None, spans: Any
) -> None:
    db = Database(database_url)
    app = build(db, flavour)
    with TestClient(OpenTelemetryMiddleware(app, tracer_provider=provider)) as client:
        assert client.get("/parents/fixed").status_code == 200
    finished = spans.get_finished_spans()
    assert [s.name for s in finished if s.name == UNIT_SPAN] == []
    assert [s for s in finished if s.kind == SpanKind.SERVER]


def test_no_unit_span_outside_a_traced_request(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    from sessionscope._observe import Observation
    from sessionscope._otel import make_tracer

    unit_spans = make_tracer()
    observation = Observation("GET", "/items", 0.0, None)
    assert unit_spans.parent(observation) is None  # no request span to nest under
    with provider.get_tracer("test").start_as_current_span("GET /items") as request:
        observation.span = unit_spans.parent(observation)
    # The context current at the opening, whose span is the request's.
    assert trace.get_current_span(observation.span) is request
    unit_spans.record(observation, True, None)
    (unit,) = [s for s in spans.get_finished_spans() if s.name == UNIT_SPAN]
    assert unit.parent is not None
    assert unit.parent.span_id == request.get_span_context().span_id
