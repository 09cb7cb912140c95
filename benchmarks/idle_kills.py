"""Killed idle backends under load: does any request fail?

Clients read and write items of the example service (async, asyncpg, a pool of 5 plus
overflow kept warm, ``ping_after_idle`` one hour: under load no connection is idle long enough
to be pinged anyway) while, every 0.5 s, every *idle* backend of the service's database is
killed (``pg_terminate_backend`` of ``state = 'idle'`` backends: connections in the pool
between requests, or checked out before their first statement). It runs twice in one go:
with ``reconnect_retries=0`` (a killed connection fails the statement that meets it) and with
the default (that statement, the unit's first, runs again on a fresh connection).

Promise: with the default, no request fails. Exits 1 when one did.

    python benchmarks/idle_kills.py --seconds 30

Root is needed for the cluster (port 5453); the service listens on 127.0.0.1:8453.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from faults_harness import HTTP_PORTS, admin_url, own_cluster, seed_item, serve_demo
from sqlalchemy import create_engine, text

CLIENTS = 16
KILL_EVERY = 0.5
KILL_IDLE = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND state = 'idle' AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend'"
)
SETTINGS = {
    "DATABASE_POOL_SIZE": "5",
    "DATABASE_MAX_OVERFLOW": "10",
    "DATABASE_PING_AFTER_IDLE": "3600",
}


async def load(base_url: str, seconds: float, user_id: int, item_id: int) -> Counter[str]:
    statuses: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def client_loop(index: int) -> None:
            round_ = 0
            while time.monotonic() < deadline:
                round_ += 1
                if round_ % 4 == 0:
                    response = await client.post(
                        f"/users/{user_id}/items", json={"name": f"c{index}-{round_}"}
                    )
                else:
                    response = await client.get(f"/items/{item_id}")
                statuses[str(response.status_code)] += 1
                await asyncio.sleep(0.002 * (index % 4))  # now and then a connection idles

        await asyncio.gather(*(client_loop(index) for index in range(CLIENTS)))
    return statuses


def killer(url: str, seconds: float, kills: list[int], stop: list[bool]) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not stop[0]:
                kills.append(int(connection.execute(KILL_IDLE).scalar_one()))
                time.sleep(KILL_EVERY)
    finally:
        engine.dispose()


async def phase(base_url: str, url: str, seconds: float) -> tuple[Counter[str], int, int]:
    user_id, item_id = seed_item(base_url, "kills")
    kills: list[int] = []
    stop = [False]
    kill_task = asyncio.create_task(asyncio.to_thread(killer, url, seconds, kills, stop))
    try:
        statuses = await load(base_url, seconds, user_id, item_id)
    finally:
        stop[0] = True
        await kill_task
    return statuses, sum(kills), sum(1 for killed in kills if killed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    arguments = parser.parse_args()
    failed_with_default = 0
    with own_cluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        for retries in ("0", "2"):
            env = {**SETTINGS, "DATABASE_RECONNECT_RETRIES": retries}
            log = Path(workdir) / f"service-{retries}.log"
            with serve_demo(cluster, env, HTTP_PORTS[0], log) as base_url:
                statuses, killed, rounds = asyncio.run(
                    phase(base_url, admin_url(cluster), arguments.seconds)
                )
            failed = sum(count for status, count in statuses.items() if status[0] != "2")
            print(
                f"reconnect_retries={retries}: {sum(statuses.values())} requests in "
                f"{arguments.seconds:g} s, {killed} idle backends killed in {rounds} rounds; "
                f"statuses {dict(sorted(statuses.items()))}; failed {failed}"
            )
            if retries != "0":
                failed_with_default = failed
    if failed_with_default:
        print("BROKEN: killed idle backends failed requests with reconnect_retries=2")
        return 1
    print("kept: no request failed with the default reconnect_retries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
