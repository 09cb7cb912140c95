"""Contract B4: when the queue for connections cannot drain within ``pool_timeout``, a
newcomer is answered 503 with ``Retry-After`` at once (``shed_overload``); while the pool keeps
up, nothing is shed, and those admitted are served in arrival order."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from sessionscope import AsyncDbSession, Database, DatabaseBusyError, DbSession
from sessionscope._slots import DRAIN_WINDOW, ConnectionSlots

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_newcomer_that_could_not_be_served_in_time_is_shed_at_once() -> None:
    slots = ConnectionSlots(1, shed=True)
    await slots.acquire(10, 1)  # held
    served: list[str] = []

    async def waiter(name: str, max_wait: float) -> None:
        await slots.acquire(max_wait, 1)
        served.append(name)

    async with anyio.create_task_group() as group:
        group.start_soon(waiter, "b", 10)
        # The queue has lasted a whole window without a slot coming back: each place in it
        # costs at least a window.
        await anyio.sleep(DRAIN_WINDOW + 0.1)
        with pytest.raises(DatabaseBusyError) as shed:
            await slots.acquire(2 * DRAIN_WINDOW - 0.1, 1)  # expected: 2 windows
        assert shed.value.headers == {"Retry-After": "1"}
        assert slots.shed == 1
        assert slots.waiting == 1  # b kept its place
        group.start_soon(waiter, "d", 10)  # 2 windows is well within 10 s: it waits
        await anyio.sleep(0.01)
        assert slots.waiting == 2
        slots.release()  # b's turn
        await anyio.sleep(0.01)
        slots.release()  # d's turn
    assert served == ["b", "d"]
    assert slots.shed == 1


async def test_the_end_of_a_queue_that_cannot_drain_in_time_is_shed_early() -> None:
    slots = ConnectionSlots(1, shed=True)
    await slots.acquire(10, 1)
    served: list[int] = []
    shed: list[int] = []

    async def waiter(index: int) -> None:
        try:
            await slots.acquire(1.0, 1)  # pool_timeout: 1 s
        except DatabaseBusyError:
            shed.append(index)
        else:
            served.append(index)

    async with anyio.create_task_group() as group:
        # A burst queues at once: the queue is young, nobody is shed yet.
        for index in range(10):
            group.start_soon(waiter, index)
        await anyio.sleep(DRAIN_WINDOW + 0.1)
        assert slots.waiting == 10
        assert slots.shed == 0
        slots.release()  # 0's turn; one slot in a window: the rest cannot make it in time
        await anyio.sleep(0.05)  # long before any deadline
        assert slots.shed > 0
        assert sorted(shed) == list(range(10 - slots.shed, 10))  # the last to arrive
        for _ in range(10):
            slots.release()
            await anyio.lowlevel.checkpoint()
    assert served == sorted(served)  # the others kept their order
    assert sorted(served + shed) == list(range(10))


async def test_without_shedding_every_newcomer_waits() -> None:
    slots = ConnectionSlots(1, shed=False)
    await slots.acquire(10, 1)
    async with anyio.create_task_group() as group:
        group.start_soon(slots.acquire, 10, 1)
        await anyio.sleep(DRAIN_WINDOW + 0.1)
        started = time.perf_counter()
        with pytest.raises(DatabaseBusyError):
            await slots.acquire(0.2, 1)
        assert time.perf_counter() - started >= 0.2
        slots.release()
    assert slots.shed == 0


async def test_nothing_is_shed_before_the_queue_was_seen_draining() -> None:
    slots = ConnectionSlots(1, shed=True)
    await slots.acquire(10, 1)
    with pytest.raises(DatabaseBusyError):
        await slots.acquire(0.05, 1)  # waited its pool_timeout: the pool was not measured
    assert slots.shed == 0


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_burst_just_above_the_pool_size_all_succeeds(
    database_url: str, flavour: str
) -> None:
    db = Database(database_url, pool_size=5, max_overflow=0, pool_timeout=5)
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/sync")
    def hold_sync(session: DbSession) -> None:
        session.execute(text("SELECT 1"))
        time.sleep(0.05)

    @app.get("/async")
    async def hold_async(session: AsyncDbSession) -> None:
        await session.execute(text("SELECT 1"))
        await anyio.sleep(0.05)

    statuses: list[int] = []
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def call() -> None:
                statuses.append((await client.get(f"/{flavour}")).status_code)

            for burst in (6, 12, 6):  # each burst just above the pool, or twice it
                async with anyio.create_task_group() as group:
                    for _ in range(burst):
                        group.start_soon(call)
        stats = db.stats().pools[flavour]
    assert statuses == [200] * 24
    assert stats.shed == 0
