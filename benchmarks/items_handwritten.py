"""The items service with a careful hand-written async ``get_db``.

The dependency has ``scope="function"`` so its exit (commit, or rollback on error) runs before
the response is sent, not after it; ``expire_on_commit=False`` keeps the returned object
readable. ``DATABASE_URL`` must name an async driver (e.g. ``postgresql+asyncpg://``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from items_model import Item, ItemOut
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

engine = create_async_engine(os.environ["DATABASE_URL"], pool_size=5, max_overflow=10)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


Db = Annotated[AsyncSession, Depends(get_db, scope="function")]


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, session: Db) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut)
async def create_item(name: str, description: str, session: Db) -> Item:
    item = Item(name=name, description=description)
    session.add(item)
    await session.flush()
    return item
