"""C2 over real sockets: concurrent read-modify-write requests on a SQLite file lose nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from srv_harness import ProbeServer

pytestmark = pytest.mark.server

INCREMENTS = 200


@pytest.mark.parametrize("backend", ["sqlite"])
def test_concurrent_read_modify_write_loses_no_update(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("default")

    async def scenario() -> tuple[Counter[int], int]:
        limits = httpx.Limits(max_connections=INCREMENTS)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as client:
            counter = (await client.post(f"/{flavour}/counters")).json()["id"]
            path = f"/{flavour}/counters/{counter}/increment"
            responses = await asyncio.gather(*(client.post(path) for _ in range(INCREMENTS)))
            final = (await client.get(f"/{flavour}/counters/{counter}")).json()["value"]
            return Counter(response.status_code for response in responses), final

    statuses, final = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert statuses == Counter({200: INCREMENTS})
    assert final == INCREMENTS
