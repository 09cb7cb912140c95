"""Hot routes on the fast path: asyncpg statements on the unit of work's own connection."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, HTTPException
from sqlalchemy import text

from sessionscope import (
    AsyncDbSession,
    Database,
    driver_connection,
    driver_dependency,
    unit_of_work,
)

db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)

# --8<-- [start:dependency]
Pg = Annotated[asyncpg.Connection, driver_dependency(asyncpg.Connection)]


@app.get("/items/{item_id}", dependencies=[unit_of_work(readonly=True)])
async def read_item(item_id: int, connection: Pg) -> dict[str, Any]:
    row = await connection.fetchrow("SELECT id, name FROM items WHERE id = $1", item_id)
    if row is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return dict(row)


@app.post("/items/")
async def create_item(name: str, connection: Pg) -> dict[str, Any]:
    # Committed before the response starts; rolled back if anything after it fails.
    row = await connection.fetchrow("INSERT INTO items (name) VALUES ($1) RETURNING id, name", name)
    return dict(row)


# --8<-- [end:dependency]


# --8<-- [start:mixed]
@app.post("/items/{item_id}/copies")
async def copy_item(item_id: int, session: AsyncDbSession) -> dict[str, int]:
    await session.execute(
        text("UPDATE items SET copies = copies + 1 WHERE id = :id"), {"id": item_id}
    )
    connection = await driver_connection(session, asyncpg.Connection)  # same transaction
    copies = await connection.fetchval("SELECT copies FROM items WHERE id = $1", item_id)
    return {"copies": copies}


# --8<-- [end:mixed]
