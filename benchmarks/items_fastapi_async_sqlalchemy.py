"""The items service with fastapi-async-sqlalchemy, as its README recommends: the
``SQLAlchemyMiddleware`` with ``commit_on_exit=True`` and the global ``db.session``."""

from __future__ import annotations

import os

from fastapi import FastAPI, HTTPException
from fastapi_async_sqlalchemy import SQLAlchemyMiddleware, db
from items_model import Item, ItemOut

app = FastAPI()
app.add_middleware(
    SQLAlchemyMiddleware,
    db_url=os.environ["DATABASE_URL"],
    engine_args={"pool_size": 5, "max_overflow": 10},
    commit_on_exit=True,
)


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int) -> Item:
    item = await db.session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut)
async def create_item(name: str, description: str) -> Item:
    item = Item(name=name, description=description)
    db.session.add(item)
    await db.session.flush()
    return item
