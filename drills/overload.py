"""Overload: 1,000 and then 2,000 clients at once against a pool of 5 connections.

Every client has its own kept-alive connection and reads an item (``GET /items/{id}``:
one query), all starting at the same moment, again and again for a few seconds (after a 503
it waits its ``Retry-After``, as far as the end of the run). The pool (the service's default
5 s wait for a connection) cannot serve them all within its wait, so many must be refused.
Promises: refusals are 503s with ``Retry-After`` that come fast (p99 under 1 s), never a
500, no client left without an answer. The figures give the 2xx count and the latencies of both.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import httpx
from _cluster import drill_cluster
from _common import HTTP_PORTS, Report, latency_summary, percentile, run
from _load import CONNECTION_ERRORS, KeptAlive, create_user, encode_request
from _service import serve

CROWDS = (1000, 2000)
POOL = {
    "DATABASE_POOL_SIZE": "5",
    "DATABASE_MAX_OVERFLOW": "0",
    "DATABASE_POOL_TIMEOUT": "5",
    # Early shedding (docs/scaling.md): off by default, the promise is made with it on.
    "DATABASE_SHED_OVERLOAD": "true",
}
TIMEOUT = 60.0
"""A client without an answer after this counts as left hanging."""


async def crowd(port: int, base_url: str, clients: int, seconds: float) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        user_id = await create_user(client, f"overload-{clients}-{time.monotonic_ns()}@example.com")
        item = await client.post(f"/users/{user_id}/items", json={"name": "overload"})
        item_id = item.json()["id"]
    request = encode_request("GET", f"/items/{item_id}", keep_alive=True)
    statuses: Counter[str] = Counter()
    latencies: dict[int, list[float]] = {}
    without_retry_after = 0
    start = asyncio.Event()
    deadline = 0.0

    async def one() -> None:
        nonlocal without_retry_after
        connection = KeptAlive(port)
        await start.wait()
        while time.monotonic() < deadline:
            try:
                response = await connection.request(request, timeout=TIMEOUT)
            except TimeoutError:
                statuses["hung"] += 1
                continue
            except CONNECTION_ERRORS as error:
                statuses[f"dropped {type(error).__name__}"] += 1
                continue
            statuses[str(response.status)] += 1
            latencies.setdefault(response.status, []).append(response.seconds)
            if response.status == 503:
                if "retry-after" not in response.headers:
                    without_retry_after += 1
                wait = float(response.headers.get("retry-after", 1))
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        connection.close()

    tasks = [asyncio.create_task(one()) for _ in range(clients)]
    await asyncio.sleep(0.1)
    began = time.monotonic()
    deadline = began + seconds
    start.set()
    await asyncio.gather(*tasks)
    return {
        "statuses": statuses,
        "latencies": latencies,
        "without_retry_after": without_retry_after,
        "seconds": time.monotonic() - began,
    }


def run_loop(main: Coroutine[Any, Any, dict[str, object]]) -> dict[str, object]:
    """The clients on uvloop where it is installed (it comes with uvicorn's standard extra):
    on two cores shared with the server, a lighter client loop measures the server more and
    itself less."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def drill(report: Report) -> None:
    seconds = 20.0 if report.full else 4.0
    report.figure(
        "load",
        f"{' and '.join(map(str, CROWDS))} clients for {seconds:g} s each,"
        f" pool 5, no overflow, {POOL['DATABASE_POOL_TIMEOUT']} s pool wait",
    )
    with drill_cluster() as cluster:
        database = cluster.fresh_database("overload")
        port = HTTP_PORTS[0]
        with serve(cluster.url(database, "asyncpg"), port, "overload", env=POOL) as service:
            for clients in CROWDS:
                seen = run_loop(crowd(port, service.url, clients, seconds))
                statuses: Counter[str] = seen["statuses"]  # type: ignore[assignment]
                latencies: dict[int, list[float]] = seen["latencies"]  # type: ignore[assignment]
                refused = latencies.get(503, [])
                report.figure(f"{clients} clients: answers", dict(statuses))
                report.figure(
                    f"{clients} clients: 2xx latency", latency_summary(latencies.get(200, []))
                )
                report.figure(f"{clients} clients: 503 latency", latency_summary(refused))
                report.figure(f"{clients} clients: wall time (s)", round(float(seen["seconds"]), 1))  # type: ignore[arg-type]
                p99 = percentile(refused, 0.99)
                report.promise(
                    f"{clients} clients: 503 p99 < 1 s",
                    p99 is None or p99 < 1.0,
                    "no 503" if p99 is None else f"p99 {p99 * 1000:.0f} ms",
                )
                errors = {
                    key: count
                    for key, count in statuses.items()
                    if key.startswith("5") and key != "503"
                }
                report.promise(f"{clients} clients: 0 x 500", not errors, str(errors or ""))
                unanswered = {
                    key: count
                    for key, count in statuses.items()
                    if key.startswith(("hung", "dropped"))
                }
                report.promise(
                    f"{clients} clients: every client answered",
                    not unanswered,
                    str(unanswered or ""),
                )
                report.promise(
                    f"{clients} clients: every 503 has Retry-After",
                    seen["without_retry_after"] == 0,
                    f"{seen['without_retry_after']} without",
                )
        cluster.drop_database(database)


if __name__ == "__main__":
    sys.exit(run("overload", __doc__, drill))
