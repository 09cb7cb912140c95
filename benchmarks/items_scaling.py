"""The sessionscope items service with the "Scaling out" options, for `scaling.py`.

Like ``items_app.py`` (``GET /items/{id}`` read-only, ``POST /items/`` insert), configured by
the environment: ``DATABASE_URL``, ``DATABASE_PGBOUNCER``; ``SCALING_NULLPOOL=1`` opens a
connection per unit of work (``NullPool``) instead of pooling; ``SCALING_RETRIES=N`` declares
``unit_of_work(retries=N)`` on the POST route.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from items_model import Base, Item, ItemOut
from sqlalchemy.pool import NullPool

from sessionscope import AsyncDbSession, Database, unit_of_work

options: dict[str, Any] = {}
if os.environ.get("SCALING_NULLPOOL") == "1":
    options["engine_options"] = {"poolclass": NullPool}
db = Database.from_env(**options)
RETRIES = int(os.environ.get("SCALING_RETRIES", "0"))


@asynccontextmanager
async def create_table(app: FastAPI) -> AsyncIterator[None]:
    async with db.transaction() as session:
        connection = await session.connection()
        await connection.run_sync(Base.metadata.create_all)
    yield


app = FastAPI(lifespan=create_table)
db.init_app(app)


@app.get("/items/{item_id}", response_model=ItemOut, dependencies=[unit_of_work(readonly=True)])
async def read_item(item_id: int, session: AsyncDbSession) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut, dependencies=[unit_of_work(retries=RETRIES)])
async def create_item(name: str, description: str, session: AsyncDbSession) -> Item:
    item = Item(name=name, description=description)
    session.add(item)
    await session.flush()
    return item
