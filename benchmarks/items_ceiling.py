"""The ORM ceiling: the leanest FastAPI + async SQLAlchemy code for the two endpoints.

No dependency: each endpoint opens its own ``AsyncSession``; reads run on an AUTOCOMMIT copy of
the engine (no BEGIN, no COMMIT), writes commit before returning. The pool is warmed with 15
connections at start-up. No guarantee beyond what this code does (no commit-before-response
for a failing serializer, no slot queue, no error mapping): it is the floor of the cost of
FastAPI and the async ORM, against which the other stacks are measured. Same contract as
``items_app``; ``DATABASE_URL`` must name an async driver.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, HTTPException
from items_model import Base, Item, ItemOut
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

engine = create_async_engine(os.environ["DATABASE_URL"], pool_size=15, max_overflow=0)
Writes = async_sessionmaker(engine, expire_on_commit=False)
Reads = async_sessionmaker(
    engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
)


async def _warm() -> None:
    # 15 connections held at once: the pool opens all of them.
    async with AsyncExitStack() as stack:
        for _ in range(15):
            await stack.enter_async_context(engine.connect())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    await _warm()
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int) -> Item:
    async with Reads() as session:
        item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut)
async def create_item(name: str, description: str) -> Item:
    async with Writes() as session:
        item = Item(name=name, description=description)
        session.add(item)
        await session.commit()
    return item
