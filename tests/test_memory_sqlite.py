"""An in-memory SQLite database is one shared connection: its units of work take turns."""

from __future__ import annotations

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select

from sessionscope import AsyncDbSession, Database

from .models import Base, Item


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_concurrent_async_requests_on_memory_sqlite_take_turns() -> None:
    db = Database("sqlite+aiosqlite://")
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/items", status_code=201)
    async def create(name: str, session: AsyncDbSession) -> None:
        session.add(Item(name=name))
        await session.flush()
        await anyio.sleep(0.01)  # another request would BEGIN on the same connection here

    async with LifespanManager(app) as manager:
        async with db.async_engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        transport = httpx.ASGITransport(app=manager.app)
        statuses: list[int] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def one(index: int) -> None:
                statuses.append(
                    (await client.post("/items", params={"name": f"n{index}"})).status_code
                )

            async with anyio.create_task_group() as group:
                for index in range(10):
                    group.start_soon(one, index)
        async with db.transaction(readonly=True) as session:
            total = await session.scalar(select(func.count()).select_from(Item))
    assert statuses == [201] * 10
    assert total == 10
