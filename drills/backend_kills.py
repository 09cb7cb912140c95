"""Backends killed under load: idle ones, then busy ones, with asyncpg and with psycopg.

Clients write items (POST, then GET) while the drill kills backends of the service's database
with ``pg_terminate_backend`` every half second: first only idle ones (``state = 'idle'``:
the pool's connections between requests), then any (in the middle of a statement or a
COMMIT). Promises: idle kills fail no request at all; busy kills fail requests only with a
503 and ``Retry-After`` (no 500, no dropped connection), and no acknowledged write is lost
or written twice.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _cluster import DrillCluster, drill_cluster
from _common import HTTP_PORTS, Report, run
from _load import Tally, create_user, http_client, writers
from _service import serve

CLIENTS = 8
INTERVAL = 0.5
PAUSE = 0.05
"""Between a client's rounds: the pool's connections sit idle now and then."""
DRIVERS = ("asyncpg", "psycopg")


async def under_kills(
    base_url: str, cluster: DrillCluster, database: str, *, busy: bool, seconds: float
) -> tuple[Tally, int]:
    tally = Tally()
    stop = asyncio.Event()
    where = "true" if busy else "state = 'idle'"
    async with http_client(base_url, CLIENTS) as client:
        user_id = await create_user(client, f"kills-{time.monotonic_ns()}@example.com")
        load = asyncio.create_task(
            writers(
                client,
                user_id,
                tally,
                clients=CLIENTS,
                stop=stop,
                prefix="busy" if busy else "idle",
                pause=PAUSE,
            )
        )
        killed = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(INTERVAL)
            killed += await asyncio.to_thread(cluster.terminate, database, where)
        stop.set()
        await load
    return tally, killed


def drill(report: Report) -> None:
    seconds = 20.0 if report.full else 3.0
    report.figure(
        "load", f"{CLIENTS} clients, a kill every {INTERVAL:g} s for {seconds:g} s per phase"
    )
    with drill_cluster() as cluster:
        for index, driver in enumerate(DRIVERS):
            database = cluster.fresh_database(f"kills_{driver}")
            url = cluster.url(database, driver)
            with serve(url, HTTP_PORTS[index], f"backend-kills-{driver}") as service:
                idle, idle_killed = asyncio.run(
                    under_kills(service.url, cluster, database, busy=False, seconds=seconds)
                )
                busy, busy_killed = asyncio.run(
                    under_kills(service.url, cluster, database, busy=True, seconds=seconds)
                )
            report.figure(
                f"{driver} idle kills", f"{idle_killed} backends; answers {idle.summary()}"
            )
            report.figure(
                f"{driver} busy kills", f"{busy_killed} backends; answers {busy.summary()}"
            )
            if idle.details or busy.details:
                report.figure(f"{driver} failures", dict(idle.details + busy.details))
            report.promise(
                f"{driver}: 0 failed requests from idle kills",
                idle.failures == 0 and idle_killed > 0,
                f"{idle.failures} failed, {idle_killed} killed",
            )
            counts = {
                name: int(count)
                for name, count in cluster.execute(
                    "SELECT name, count(*) FROM demo_items GROUP BY name", database=database
                )
            }
            acknowledged = idle.acknowledged + busy.acknowledged
            lost = [name for name in acknowledged if name not in counts]
            twice = [name for name, count in counts.items() if count > 1]
            report.promise(
                f"{driver}: busy kills: 0 x 500", busy.server_errors == 0, busy.summary()
            )
            report.promise(
                f"{driver}: busy kills: every failure a 503 with Retry-After",
                busy.without_retry_after == 0 and not busy.transport_errors,
                f"{busy.without_retry_after} without Retry-After, "
                f"{sum(busy.transport_errors.values())} dropped",
            )
            report.promise(
                f"{driver}: 0 acknowledged writes lost, none twice",
                not lost and not twice,
                f"{len(acknowledged)} acknowledged, {len(lost)} lost, {len(twice)} twice",
            )
            cluster.drop_database(database)


if __name__ == "__main__":
    sys.exit(run("backend_kills", __doc__, drill))
