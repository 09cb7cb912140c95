"""Clients that walk away: a third of the requests are abandoned mid-request.

Of every three requests (writes and reads, 30 at a time), one is abandoned: the client closes
its socket after sending the request, part of its body, or part of its headers, at once or
while the handler runs. Promises: every request that waits gets its answer (no hung
request) and no 5xx; afterwards no connection is checked out of the pool, none is left
``idle in transaction`` or busy, the database has exactly the connections the pool holds
idle, and the service answers normally.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter

import httpx
from _cluster import DrillCluster, drill_cluster
from _common import HTTP_PORTS, Report, run
from _load import abandoned_request, create_user, encode_request, raw_request
from _service import serve

CONCURRENCY = 30
DRIVERS = ("asyncpg", "psycopg")
SETTLE = 10.0
"""Seconds the pool has to get every connection back after the last request."""


def _request(kind: int, user_id: int, number: int) -> bytes:
    if kind == 0:
        body = json.dumps({"name": f"chaos {number}", "description": "x" * 200}).encode()
        return encode_request(
            "POST", f"/users/{user_id}/items", body, {"Content-Type": "application/json"}
        )
    if kind == 1:
        return encode_request("GET", f"/items?owner_id={user_id}&limit=50")
    return encode_request("GET", f"/users/{user_id}")


async def chaos(port: int, base_url: str, requests: int) -> tuple[Counter[str], int]:
    """``requests`` requests, every third abandoned; the answers by class, and the hung."""
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        user_id = await create_user(client, f"chaos-{time.monotonic_ns()}@example.com")
    outcomes: Counter[str] = Counter()
    hung = 0
    limit = asyncio.Semaphore(CONCURRENCY)
    randomness = random.Random(7)

    async def one(number: int) -> None:
        nonlocal hung
        request = _request(number % 3, user_id, number)
        async with limit:
            if number % 3 == 2:
                # Cut the request at a random byte (headers or body), or send all of it, then
                # go, at once or while the handler may be running.
                cut = randomness.choice([len(request), randomness.randrange(1, len(request))])
                await abandoned_request(
                    port, request[:cut], randomness.choice([0, 0.005, 0.02, 0.1])
                )
                outcomes["abandoned"] += 1
                return
            try:
                response = await raw_request(port, request)
            except TimeoutError:
                hung += 1
                return
            except (ConnectionError, OSError) as error:
                outcomes[f"dropped {type(error).__name__}"] += 1
                return
            outcomes[str(response.status)] += 1

    await asyncio.gather(*(one(number) for number in range(requests)))
    return outcomes, hung


async def settled(
    base_url: str, cluster: DrillCluster, database: str
) -> tuple[dict[str, object], dict[str, int]]:
    """Wait (at most `SETTLE` s) until no connection is checked out and the database holds
    only the pool's idle ones; the pools and the backends, as last seen."""
    deadline = time.monotonic() + SETTLE
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        while True:
            ready = (await client.get("/readyz")).json()
            backends = await asyncio.to_thread(cluster.backends, database)
            pools = ready.get("pools", {})
            idle = sum(pool["idle"] for pool in pools.values())
            out = sum(pool["checked_out"] for pool in pools.values())
            if (out == 0 and backends == {"idle": idle}) or time.monotonic() > deadline:
                return pools, backends
            await asyncio.sleep(0.2)


async def healthy(base_url: str) -> Counter[int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        answers = await asyncio.gather(*(client.get("/items?limit=5") for _ in range(20)))
    return Counter(answer.status_code for answer in answers)


def drill(report: Report) -> None:
    requests = 3000 if report.full else 300
    report.figure(
        "load", f"{requests} requests per driver, {CONCURRENCY} at a time, 1 in 3 abandoned"
    )
    with drill_cluster() as cluster:
        for index, driver in enumerate(DRIVERS):
            database = cluster.fresh_database(f"chaos_{driver}")
            port = HTTP_PORTS[index]
            with serve(cluster.url(database, driver), port, f"client-chaos-{driver}") as service:
                outcomes, hung = asyncio.run(chaos(port, service.url, requests))
                pools, backends = asyncio.run(settled(service.url, cluster, database))
                after = asyncio.run(healthy(service.url))
            report.figure(f"{driver} answers", dict(outcomes))
            report.figure(f"{driver} pools after", pools)
            report.figure(f"{driver} backends after", backends)
            errors = {
                key: count for key, count in outcomes.items() if key.startswith(("5", "dropped"))
            }
            report.promise(f"{driver}: no hung request", hung == 0, f"{hung} hung")
            report.promise(f"{driver}: no 5xx, no dropped answer", not errors, str(errors or ""))
            idle = sum(int(pool["idle"]) for pool in pools.values())  # type: ignore[index]
            checked_out = sum(int(pool["checked_out"]) for pool in pools.values())  # type: ignore[index]
            report.promise(
                f"{driver}: no leaked connection",
                checked_out == 0 and backends.get("idle", 0) == idle and set(backends) <= {"idle"},
                f"{checked_out} checked out; pool idle {idle}; database {backends}",
            )
            report.promise(
                f"{driver}: 0 idle in transaction",
                backends.get("idle in transaction", 0) == 0,
                f"{backends.get('idle in transaction', 0)}",
            )
            report.promise(f"{driver}: healthy afterwards", set(after) == {200}, str(dict(after)))
            cluster.drop_database(database)


if __name__ == "__main__":
    sys.exit(run("client_chaos", __doc__, drill))
