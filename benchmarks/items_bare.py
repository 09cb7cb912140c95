"""The ceiling: the same two endpoints on bare Starlette and an asyncpg pool, no ORM, no
FastAPI. PostgreSQL only; ``DATABASE_URL`` may carry a ``+asyncpg`` driver name."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DSN = os.environ["DATABASE_URL"].replace("+asyncpg", "").replace("+psycopg", "")
pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(DSN, min_size=5, max_size=15)
    yield
    await pool.close()


async def read_item(request: Request) -> JSONResponse:
    assert pool is not None
    row = await pool.fetchrow(
        "SELECT id, name, description FROM items WHERE id = $1", request.path_params["item_id"]
    )
    if row is None:
        return JSONResponse({"detail": "Item not found"}, status_code=404)
    return JSONResponse(dict(row))


async def create_item(request: Request) -> JSONResponse:
    assert pool is not None
    params = request.query_params
    if "name" not in params or "description" not in params:
        return JSONResponse({"detail": "name and description are required"}, status_code=422)
    row = await pool.fetchrow(
        "INSERT INTO items (name, description) VALUES ($1, $2) RETURNING id, name, description",
        params["name"],
        params["description"],
    )
    return JSONResponse(dict(row))


app = Starlette(
    routes=[
        Route("/items/{item_id:int}", read_item, methods=["GET"]),
        Route("/items/", create_item, methods=["POST"]),
    ],
    lifespan=lifespan,
)
