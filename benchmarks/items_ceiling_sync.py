"""The sync ORM ceiling: ``def`` endpoints, each with its own ``Session``, no dependency.

Reads run on an AUTOCOMMIT copy of the engine, writes commit before returning; 15 warm
connections. The floor of the cost of FastAPI's thread pool and the sync ORM, against which
``items_sessionscope_sync`` is measured. Same contract as ``items_app``; ``DATABASE_URL`` may
name the async driver: the sync one (psycopg) is used.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

from fastapi import FastAPI, HTTPException
from items_model import Base, Item, ItemOut
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

URL = os.environ["DATABASE_URL"].replace("+asyncpg", "+psycopg").replace("+aiosqlite", "")
engine = create_engine(URL, pool_size=15, max_overflow=0)
Writes = sessionmaker(engine, expire_on_commit=False)
Reads = sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    Base.metadata.create_all(engine)
    with ExitStack() as stack:
        for _ in range(15):
            stack.enter_context(engine.connect())
    yield
    engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}", response_model=ItemOut)
def read_item(item_id: int) -> Item:
    with Reads() as session:
        item = session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut)
def create_item(name: str, description: str) -> Item:
    with Writes() as session:
        item = Item(name=name, description=description)
        session.add(item)
        session.commit()
    return item
