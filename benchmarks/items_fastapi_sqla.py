"""The items service with fastapi-sqla, as its README recommends: the lifespan calls
``startup()``, ``setup_middlewares(app)``, the ``AsyncSession`` dependency commits before the
response on success. Its ``Base`` reflects the ``items`` table at start-up."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import fastapi_sqla
from fastapi import FastAPI, HTTPException
from fastapi_sqla import AsyncSession, Base
from pydantic import BaseModel, ConfigDict

os.environ.setdefault("sqlalchemy_url", os.environ["DATABASE_URL"])


class Item(Base):
    __tablename__ = "items"


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await fastapi_sqla.startup()
    yield


app = FastAPI(lifespan=lifespan)
fastapi_sqla.setup_middlewares(app)


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, session: AsyncSession) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut)
async def create_item(name: str, description: str, session: AsyncSession) -> Item:
    item = Item(name=name, description=description)
    session.add(item)
    await session.flush()
    return item
