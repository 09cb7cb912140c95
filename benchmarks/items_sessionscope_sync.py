"""The items service with sessionscope's sync session: ``def`` endpoints and `DbSession`.

Same contract as ``items_app``; ``DATABASE_URL`` may name either driver (the sync one is derived).
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from items_model import Item, ItemOut

from sessionscope import Database, DbSession, unit_of_work

db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)


@app.get("/items/{item_id}", response_model=ItemOut, dependencies=[unit_of_work(readonly=True)])
def read_item(item_id: int, session: DbSession) -> Item:
    item = session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.post("/items/", response_model=ItemOut)
def create_item(name: str, description: str, session: DbSession) -> Item:
    item = Item(name=name, description=description)
    session.add(item)
    session.flush()
    return item
