"""The benchmarks' items service, written with sessionscope the way its docs recommend.

``GET /items/{item_id}`` reads one row by primary key (404 when absent); ``POST /items/?name=...
&description=...`` inserts one and returns it with its id, committed before the response starts.
Configured only by ``DATABASE_URL`` (e.g. ``postgresql+asyncpg://...``); run from this folder with
``uvicorn items_app:app``. The table is created at start-up when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from items_model import Base, Item, ItemOut

from sessionscope import AsyncDbSession, Database, unit_of_work

__all__ = ["Item", "ItemOut", "app", "db"]

# BENCH_OTEL_SDK: an OpenTelemetry SDK tracer provider records every span (no exporter), so
# the `opentelemetry` option's spans cost what they cost in production. FastAPI's own request
# telemetry stays off: the measurement is sessionscope's.
FASTAPI_OPTIONS: dict[str, Any] = {}
if os.environ.get("BENCH_OTEL_SDK"):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    if not os.environ.get("BENCH_FASTAPI_TRACING"):
        FASTAPI_OPTIONS["telemetry"] = {"tracing": False, "metrics": False, "logs": False}

db = Database.from_env()


@asynccontextmanager
async def create_table(app: FastAPI) -> AsyncIterator[None]:
    async with db.transaction() as session:
        connection = await session.connection()
        await connection.run_sync(Base.metadata.create_all)
    yield


app = FastAPI(lifespan=create_table, **FASTAPI_OPTIONS)
db.init_app(app)


@app.get("/items/{item_id}", response_model=ItemOut, dependencies=[unit_of_work(readonly=True)])
async def read_item(item_id: int, session: AsyncDbSession) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut, dependencies=[unit_of_work()])
async def create_item(name: str, description: str, session: AsyncDbSession) -> Item:
    item = Item(name=name, description=description)
    session.add(item)
    await session.flush()
    return item
