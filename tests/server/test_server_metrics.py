"""G1 on a live uvicorn server (PostgreSQL): under a scripted load the pool metrics move as they
must, and the Prometheus text scraped from ``/metrics`` parses with ``prometheus_client``'s
parser and holds the series, hold time attributed to the route template."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from srv_harness import ProbeServer

pytestmark = [pytest.mark.server]

POOL_SIZE = 3  # the "metrics" profile: pool_size=3, max_overflow=0
CONCURRENT = 12
HOLD_MS = 600

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str) -> Samples:
    response = httpx.get(f"{base_url}/metrics/", timeout=10)
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def pool_value(samples: Samples, name: str, flavour: str) -> float:
    return samples[(name, (("database", "default"), ("flavour", flavour)))]


def route_value(samples: Samples, name: str, route: str, **labels: str) -> float:
    """A per-route sample; 0 before the route's first request."""
    key = tuple(sorted({"database": "default", "method": "GET", "route": route, **labels}.items()))
    return samples.get((name, key), 0.0)


async def load(base_url: str, path: str) -> list[int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one() -> int:
            return (await client.get(path, params={"ms": HOLD_MS})).status_code

        return list(await asyncio.gather(*(one() for _ in range(CONCURRENT))))


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_pool_metrics_move_under_load(
    probe: Callable[[str], ProbeServer], backend: str, flavour: str
) -> None:
    server = probe("metrics")
    base = server.base_url
    route = f"/{flavour}/hold"
    before = scrape(base)
    hold_count_key = "sessionscope_connection_hold_seconds_count"
    done_before = route_value(before, hold_count_key, route)
    hold_sum_before = route_value(before, "sessionscope_connection_hold_seconds_sum", route)
    wait_sum_before = route_value(before, "sessionscope_pool_wait_seconds_sum", route)
    hold_bucket = "sessionscope_connection_hold_seconds_bucket"
    fast_before = route_value(before, hold_bucket, route, le="0.5")

    peak_checked_out = 0.0
    peak_waiters = 0.0

    async def load_and_watch() -> list[int]:
        nonlocal peak_checked_out, peak_waiters
        requests = asyncio.create_task(load(base, route))
        deadline = time.monotonic() + 30
        while not requests.done() and time.monotonic() < deadline:
            samples = await asyncio.to_thread(scrape, base)
            peak_checked_out = max(
                peak_checked_out, pool_value(samples, "sessionscope_pool_checked_out", flavour)
            )
            peak_waiters = max(
                peak_waiters, pool_value(samples, "sessionscope_pool_waiters", flavour)
            )
            await asyncio.sleep(0.05)
        return await requests

    statuses = asyncio.run(load_and_watch())
    assert statuses == [200] * CONCURRENT

    # Checked out rose to the pool size, and requests beyond it waited for a slot.
    assert peak_checked_out == POOL_SIZE
    assert peak_waiters > 0

    # Back to 0 once the load is over.
    deadline = time.monotonic() + 10
    after = scrape(base)
    while pool_value(after, "sessionscope_pool_checked_out", flavour) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
        after = scrape(base)
    assert pool_value(after, "sessionscope_pool_checked_out", flavour) == 0
    assert pool_value(after, "sessionscope_pool_waiters", flavour) == 0
    assert pool_value(after, "sessionscope_pool_size", flavour) == POOL_SIZE

    # Hold time went to the route's template: each request held its connection ~HOLD_MS.
    held = route_value(after, hold_count_key, route) - done_before
    assert held == CONCURRENT
    hold_sum = route_value(after, "sessionscope_connection_hold_seconds_sum", route)
    assert hold_sum - hold_sum_before >= CONCURRENT * HOLD_MS / 1000 * 0.9
    # Waits: at least the requests past the pool size waited about one hold each.
    wait_sum = route_value(after, "sessionscope_pool_wait_seconds_sum", route)
    assert wait_sum - wait_sum_before >= (CONCURRENT - POOL_SIZE) * HOLD_MS / 1000 * 0.5
    fast = route_value(after, hold_bucket, route, le="0.5")
    assert fast == fast_before  # none of this load held its connection for less than 0.5 s
    commits = after[("sessionscope_units_total", (("database", "default"), ("outcome", "commit")))]
    assert commits >= CONCURRENT


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_routes_are_labelled_by_template_never_raw_path(
    probe: Callable[[str], ProbeServer], backend: str
) -> None:
    server = probe("metrics")
    for item_id in (123456, 654321):
        assert httpx.get(f"{server.base_url}/sync/items/{item_id}", timeout=10).status_code == 404
    samples = scrape(server.base_url)
    routes = {dict(labels).get("route") for _, labels in samples}
    assert "/sync/items/{item_id}" in routes
    assert not any(route and ("123456" in route or "654321" in route) for route in routes)
    rollbacks = (("database", "default"), ("outcome", "rollback"))
    assert samples[("sessionscope_units_total", rollbacks)] >= 2
