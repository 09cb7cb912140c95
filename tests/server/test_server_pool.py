"""B1/B2 over real sockets: far more sync requests than connections and threads all complete
while an async health check keeps answering; a pool exhausted past its wait answers 503 fast."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from srv_harness import ProbeServer

pytestmark = pytest.mark.server

CONCURRENT_REQUESTS = 512  # small_pool profile: pool_size=5, max_overflow=0
HOLD_MS = 50
HEALTH_BOUND = 1.0


class HealthProbe(threading.Thread):
    """Times ``/healthz`` from its own thread (so the load's client loop does not distort
    the numbers) until stopped."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stop.wait(0.1):
                started = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                self.latencies.append(time.monotonic() - started)
                if status != 200:
                    self.failures.append(f"status {status}")


async def sync_endpoint_burst(base_url: str) -> Counter[int]:
    """All requests at once, half to a route with ``response_model``, half to one with a
    return annotation (the shapes that deadlock a pool behind FastAPI's threadpool)."""
    limits = httpx.Limits(max_connections=CONCURRENT_REQUESTS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        paths = ("/sync/hold-model", "/sync/hold")

        async def one(index: int) -> int:
            response = await client.get(paths[index % 2], params={"ms": HOLD_MS})
            return response.status_code

        statuses = await asyncio.wait_for(
            asyncio.gather(*(one(index) for index in range(CONCURRENT_REQUESTS))), timeout=90
        )
    return Counter(statuses)


def test_sync_endpoints_never_deadlock_a_small_pool(
    probe: Callable[[str], ProbeServer], backend: str, record_property: Callable[..., None]
) -> None:
    server = probe("small_pool")
    health = HealthProbe(server.base_url)
    health.start()
    started = time.monotonic()
    try:
        statuses = asyncio.run(sync_endpoint_burst(server.base_url))
    finally:
        health.stop.set()
        health.join(15)
    elapsed = time.monotonic() - started
    worst = max(health.latencies, default=float("inf"))
    record_property("burst_seconds", round(elapsed, 2))
    record_property("healthz_worst_seconds", round(worst, 3))
    print(
        f"{backend}: {CONCURRENT_REQUESTS} sync requests holding a connection {HOLD_MS} ms, "
        f"pool 5+0: {dict(statuses)} in {elapsed:.1f} s; /healthz worst {worst * 1000:.0f} ms "
        f"over {len(health.latencies)} probes"
    )
    assert statuses == Counter({200: CONCURRENT_REQUESTS})
    assert health.failures == []
    assert len(health.latencies) >= 5
    # The event loop kept answering throughout: never stalled for a second, or for a quarter
    # of the burst on a machine so loaded that the burst itself takes far longer than usual
    # (the quiet-machine figure is recorded above and in the docs, not asserted).
    assert worst < max(HEALTH_BOUND, elapsed / 4)
    state = server.wait_pool_idle()
    assert (state["sync"], state["async"]) == (0, 0), state


def test_exhausted_pool_answers_503_with_retry_after_quickly(
    probe: Callable[[str], ProbeServer], flavour: str, record_property: Callable[..., None]
) -> None:
    server = probe("short_wait")  # pool_size=2, max_overflow=0, pool_timeout=0.5

    async def scenario() -> tuple[list[httpx.Response], list[tuple[httpx.Response, float]]]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            holders = [
                asyncio.create_task(client.get(f"/{flavour}/hold", params={"ms": 2000}))
                for _ in range(2)
            ]
            deadline = time.monotonic() + 5
            while (await client.get("/debug/pool")).json()[flavour] < 2:
                assert time.monotonic() < deadline, "the holders never got their connections"
                await asyncio.sleep(0.02)

            async def timed() -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = await client.get(f"/{flavour}/hold", params={"ms": 10})
                return response, time.monotonic() - started

            refused = await asyncio.gather(*(timed() for _ in range(4)))
            return list(await asyncio.gather(*holders)), list(refused)

    held, refused = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    waits = [round(seconds, 3) for _, seconds in refused]
    record_property("seconds_to_503", waits)
    print(f"{server.backend}-{flavour}: 503 after {waits} s (pool_timeout 0.5 s)")
    assert [response.status_code for response in held] == [200, 200]
    for response, seconds in refused:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"].isdigit()
        assert set(response.json()) == {"detail"}
        assert seconds < 1.5  # pool_timeout, not the holders' 2 s, nor a 30 s stall
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.get(f"/{flavour}/hold", params={"ms": 1}).status_code == 200
