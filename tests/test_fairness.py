"""Async requests get a connection in arrival order, even against a request that arrives
just as a connection comes back (contract B1/B2: no request starves past ``pool_timeout``)."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import event, text

from sessionscope import AsyncDbSession, Database


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_late_request_does_not_take_the_connection_of_an_earlier_waiter(
    database_url: str,
) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, pool_timeout=3)
    app = FastAPI(lifespan=db.lifespan)
    release_first = anyio.Event()
    returned = [False]
    served: list[str] = []

    @app.get("/first")
    async def first(session: AsyncDbSession) -> None:
        await session.execute(text("SELECT 1"))
        served.append("first")
        await release_first.wait()

    @app.get("/waiter")
    async def waiter(session: AsyncDbSession) -> None:
        await session.execute(text("SELECT 1"))
        served.append("waiter")

    @app.get("/late")
    async def late(session: AsyncDbSession) -> None:
        # Stay in the event loop's ready queue until the first connection comes back, then
        # ask for one at once: ahead of the waiter that the return has just woken.
        while not returned[0]:  # not an Event: it would wake this task after the waiter
            await anyio.lowlevel.checkpoint()
        await session.execute(text("SELECT 1"))
        served.append("late")

    async with LifespanManager(app) as manager:

        @event.listens_for(db.async_engine.sync_engine, "checkin")
        def _on_checkin(*_: Any) -> None:
            returned[0] = True

        transport = httpx.ASGITransport(app=manager.app)
        statuses: dict[str, int] = {}
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def call(path: str) -> None:
                statuses[path] = (await client.get(path)).status_code

            async with anyio.create_task_group() as group:
                group.start_soon(call, "/first")
                await anyio.sleep(0.2)
                group.start_soon(call, "/waiter")
                await anyio.sleep(0.2)
                group.start_soon(call, "/late")
                await anyio.sleep(0.2)
                release_first.set()

    assert statuses == {"/first": 200, "/waiter": 200, "/late": 200}
    assert served == ["first", "waiter", "late"]
