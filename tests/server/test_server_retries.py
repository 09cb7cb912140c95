"""Contract D2 on a live server: a route with ``unit_of_work(retries=...)`` runs again, whole,
when its transaction hits a serialization failure or a deadlock before the response starts.

100 concurrent read-modify-write increments of one row under SERIALIZABLE (PostgreSQL:
40001; MariaDB: SERIALIZABLE reads take shared locks, the writes deadlock, 1213). Each request
adds the ``by`` of its JSON body: a run again must read the same body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from srv_harness import ProbeServer

REQUESTS = 100

pytestmark = [
    pytest.mark.server,
    pytest.mark.parametrize(
        "backend",
        [
            pytest.param("postgres", marks=pytest.mark.postgres),
            pytest.param("mariadb", marks=pytest.mark.mariadb),
        ],
    ),
]


async def _increments(base_url: str, path: str) -> list[int]:
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.post(path, json={"by": 1}) for _ in range(REQUESTS))
        )
    return [response.status_code for response in responses]


def _new_counter(server: ProbeServer, flavour: str) -> int:
    response = httpx.post(f"{server.base_url}/{flavour}/counters", timeout=10)
    assert response.status_code == 201
    return int(response.json()["id"])


def _read_counter(server: ProbeServer, flavour: str, counter: int) -> int:
    response = httpx.get(f"{server.base_url}/{flavour}/counters/{counter}", timeout=10)
    return int(response.json()["value"])


def test_retried_serializable_increments_all_land(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("serial")
    counter = _new_counter(server, flavour)
    since = server.server.log_size()
    path = f"/{flavour}/counters/{counter}/serial-increment"
    statuses = asyncio.run(_increments(server.base_url, path))
    assert statuses.count(200) == REQUESTS, sorted(set(statuses))
    assert _read_counter(server, flavour, counter) == REQUESTS
    # Retries did happen (and were logged with the route).
    assert f"POST {path} failed with a retryable error" in server.server.log_text(since)
    state = server.wait_pool_idle()
    assert state["sync"] == state["async"] == 0


def test_without_retries_conflicts_fail_and_nothing_is_half_applied(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("serial")
    counter = _new_counter(server, flavour)
    path = f"/{flavour}/counters/{counter}/serial-increment-once"
    statuses = asyncio.run(_increments(server.base_url, path))
    assert set(statuses) <= {200, 409, 503}
    assert statuses.count(200) < REQUESTS
    assert _read_counter(server, flavour, counter) == statuses.count(200)
