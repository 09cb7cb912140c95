"""The items service with advanced-alchemy's FastAPI extension, as its docs recommend:
``AdvancedAlchemy(config=SQLAlchemyAsyncConfig(...), app=app)``, sessions from
``Depends(alchemy.provide_session())``, ``commit_mode="autocommit"`` (commit on 2xx)."""

from __future__ import annotations

import os
from typing import Annotated

from advanced_alchemy.extensions.fastapi import (
    AdvancedAlchemy,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
)
from fastapi import Depends, FastAPI, HTTPException
from items_model import Item, ItemOut
from sqlalchemy.ext.asyncio import AsyncSession

app = FastAPI()
alchemy = AdvancedAlchemy(
    config=SQLAlchemyAsyncConfig(
        connection_string=os.environ["DATABASE_URL"],
        session_config=AsyncSessionConfig(expire_on_commit=False),
        commit_mode="autocommit",
    ),
    app=app,
)
DbSession = Annotated[AsyncSession, Depends(alchemy.provide_session())]


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, session: DbSession) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut)
async def create_item(name: str, description: str, session: DbSession) -> Item:
    item = Item(name=name, description=description)
    session.add(item)
    await session.flush()
    return item
