"""The items service on sessionscope's fast path: statements on the unit of work's own
asyncpg (or psycopg) connection, no ORM session, the same guarantees (commit before the
response, rollback on an error, the pool slot, 409/503 for database errors).

Same contract as ``items_app``: configured only by ``DATABASE_URL`` (a PostgreSQL URL; the
fast path runs on asyncpg, or on psycopg when ``DATABASE_ASYNC_URL`` names it), run from
this folder with ``uvicorn items_fastpath:app``, the table created at start-up when missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from items_model import Base

from sessionscope import Database, driver_dependency, unit_of_work

db = Database.from_env()
SELECT = "SELECT id, name, description FROM items WHERE id = $1"
INSERT = "INSERT INTO items (name, description) VALUES ($1, $2) RETURNING id, name, description"

if str(db.config.async_url or "").startswith("postgresql+psycopg"):
    # DATABASE_ASYNC_URL=postgresql+psycopg://...: psycopg's AsyncConnection (by default the
    # async flavour of a PostgreSQL URL is asyncpg).
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    Connection = Annotated[AsyncConnection, driver_dependency(AsyncConnection)]

    async def fetch_one(connection: Any, query: str, *args: Any) -> dict[str, Any] | None:
        cursor = connection.cursor(row_factory=dict_row)
        await cursor.execute(query.replace("$1", "%s").replace("$2", "%s"), args)
        row: dict[str, Any] | None = await cursor.fetchone()
        return row

else:
    import asyncpg

    Connection = Annotated[asyncpg.Connection, driver_dependency(asyncpg.Connection)]  # type: ignore[misc]

    async def fetch_one(connection: Any, query: str, *args: Any) -> dict[str, Any] | None:
        row = await connection.fetchrow(query, *args)
        return None if row is None else dict(row)


@asynccontextmanager
async def create_table(app: FastAPI) -> AsyncIterator[None]:
    async with db.transaction() as session:
        connection = await session.connection()
        await connection.run_sync(Base.metadata.create_all)
    yield


app = FastAPI(lifespan=create_table)
db.init_app(app)


@app.get("/items/{item_id}", dependencies=[unit_of_work(readonly=True)])
async def read_item(item_id: int, connection: Connection) -> JSONResponse:
    row = await fetch_one(connection, SELECT, item_id)
    if row is None:
        return JSONResponse({"detail": "Item not found"}, status_code=404)
    return JSONResponse(row)


@app.post("/items/")
async def create_item(name: str, description: str, connection: Connection) -> JSONResponse:
    return JSONResponse(await fetch_one(connection, INSERT, name, description))
