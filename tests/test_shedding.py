"""Contract B4: when the queue for connections cannot drain within ``pool_timeout``, a
newcomer is answered 503 with ``Retry-After`` at once (``shed_overload``); while the pool keeps
up, nothing is shed, and those admitted are served in arrival order."""

from __future__ import annotations

import math
import time

import anyio
import anyio.abc
import anyio.lowlevel
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from sessionscope import AsyncDbSession, Database, DatabaseBusyError, DatabaseConfig, DbSession
from sessionscope._slots import ConnectionSlots

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Queue:
    """Requests queued on one slot, served as the test gives the slot back: the test holds
    the slot for each of them."""

    def __init__(self, slots: ConnectionSlots, group: anyio.abc.TaskGroup) -> None:
        self.slots = slots
        self.group = group
        self.served: list[str] = []
        self.shed: list[str] = []

    async def join(self, name: str, max_wait: float) -> None:
        self.group.start_soon(self._wait, name, max_wait)
        await anyio.sleep(0.001)

    async def _wait(self, name: str, max_wait: float) -> None:
        try:
            await self.slots.acquire(max_wait, 1)
        except DatabaseBusyError as error:
            assert error.headers == {"Retry-After": str(max(1, math.ceil(max_wait)))}
            self.shed.append(name)
        else:
            self.served.append(name)

    async def drain(self, releases: int, every: float) -> None:
        for _ in range(releases):
            await anyio.sleep(every)
            self.slots.release()
            await anyio.lowlevel.checkpoint()


async def seen_draining(queue: Queue) -> None:
    """20 queued requests, 12 of them served a tenth of a second apart: the pool has shown
    it drains ten places a second; 8 still wait."""
    await queue.slots.acquire(30, 1)
    for index in range(20):
        await queue.join(f"w{index}", 30)
    await queue.drain(12, 0.1)
    assert queue.slots.waiting == 8


async def test_a_newcomer_that_could_not_be_served_in_time_is_shed_at_once() -> None:
    slots = ConnectionSlots(1, shed=True)
    async with anyio.create_task_group() as group:
        queue = Queue(slots, group)
        await seen_draining(queue)
        await queue.join("hasty", 0.5)  # behind 8 waiters: about 0.9 s
        assert queue.shed == ["hasty"]
        assert slots.shed == 1
        await queue.join("patient", 10)
        await queue.drain(9, 0.01)
    assert queue.served == [f"w{index}" for index in range(20)] + ["patient"]


@pytest.mark.parametrize(
    ("pool_timeout", "retry_after", "longest"), [(5.0, 1, 5), (2.2, 1, 3), (0.5, 2, 2)]
)
def test_the_longest_retry_after_of_a_config(
    pool_timeout: float, retry_after: int, longest: int
) -> None:
    config = DatabaseConfig(pool_timeout=pool_timeout, retry_after=retry_after)
    assert config.longest_retry_after == longest


async def test_a_shed_request_is_told_the_longest_retry_after() -> None:
    config = DatabaseConfig(pool_timeout=0.5, retry_after=2)
    slots = ConnectionSlots(1, shed=True)
    async with anyio.create_task_group() as group:
        queue = Queue(slots, group)
        await seen_draining(queue)
        with pytest.raises(DatabaseBusyError) as shed:
            await slots.acquire(config.pool_timeout, config.retry_after)
        assert shed.value.headers == {"Retry-After": str(config.longest_retry_after)}
        await queue.drain(8, 0.01)


async def test_the_end_of_a_queue_that_cannot_drain_in_time_is_shed_early() -> None:
    slots = ConnectionSlots(1, shed=True)
    async with anyio.create_task_group() as group:
        queue = Queue(slots, group)
        await seen_draining(queue)
        burst = [f"b{index}" for index in range(10)]
        for name in burst:
            await queue.join(name, 3.0)  # 0.9 to 1.8 s at the rate seen: all admitted
        assert queue.shed == []
        await anyio.sleep(2.0)  # the pool stalls; at its rate, the end cannot make it now
        slots.release()
        await anyio.sleep(0.05)  # long before any deadline
        assert slots.shed > 0
        assert queue.shed == burst[-slots.shed :][::-1]  # the last to arrive, from the end
        await queue.drain(18 - slots.shed, 0.01)
    assert queue.served == [f"w{index}" for index in range(20)] + burst[: 10 - slots.shed]


async def test_without_shedding_every_newcomer_waits() -> None:
    slots = ConnectionSlots(1, shed=False)
    async with anyio.create_task_group() as group:
        queue = Queue(slots, group)
        await seen_draining(queue)
        started = time.perf_counter()
        with pytest.raises(DatabaseBusyError):
            await slots.acquire(0.2, 1)
        # Its whole 0.2 s, not answered at once; an event loop may fire a timer up to a
        # millisecond early (its select timeout is rounded to milliseconds).
        assert time.perf_counter() - started >= 0.195
        await queue.drain(8, 0.01)
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
    db = Database(database_url, pool_size=5, max_overflow=0, pool_timeout=5, shed_overload=True)
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
