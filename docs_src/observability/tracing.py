"""OpenTelemetry: sessionscope's unit-of-work spans beside the SQLAlchemy instrumentation's
statement spans, under FastAPI's (or the ASGI instrumentation's) server span.

    pip install "sessionscope[otel]" opentelemetry-sdk opentelemetry-instrumentation-sqlalchemy
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sessionscope import Database

exporter = InMemorySpanExporter()  # in production: an OTLP exporter and a batch processor
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

# --8<-- [start:route_budget]
db = Database.from_env(opentelemetry=True)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with db.lifespan(app):
        # Statement spans come from the instrumentation, on this app's engines. It declares
        # SQLAlchemy < 2.1; skip_dep_check lets it instrument 2.1, whose engine events it uses.
        SQLAlchemyInstrumentor().instrument(
            engines=[db.sync_engine, db.async_engine.sync_engine], skip_dep_check=True
        )
        try:
            yield
        finally:
            SQLAlchemyInstrumentor().uninstrument()


# --8<-- [end:route_budget]


app = FastAPI(lifespan=lifespan)
