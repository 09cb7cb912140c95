"""Backends killed under load: idle ones, then busy ones, with asyncpg and with psycopg.

Clients write items (POST, then GET). Idle kills: the clients run in bursts of half a second;
between two bursts, when every client has its answer and no request is in flight, the drill
kills the service database's idle backends (``state = 'idle'``: the pool's connections,
between requests) with ``pg_terminate_backend`` and waits until they have exited; the next
burst meets the dead connections. Busy kills: the clients run without a break while the
drill kills any backend of the database every half second (in the middle of a statement or
a COMMIT). Promises: idle kills fail no request at all; busy kills fail requests only with a
503 and ``Retry-After`` (no 500, no dropped connection), and no acknowledged write is lost
or written twice.

The idle kills wait for a pause because a backend seen idle under continuous load may be
taken by a request before the kill lands: its unit's first statement has run, the kill is a
busy one, and the request rightly fails with a 503.
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
EXIT_WAIT = 5.0
"""How long an idle kill waits for its backend to exit, at most."""
DRIVERS = ("asyncpg", "psycopg")


async def idle_kills(
    base_url: str, cluster: DrillCluster, database: str, *, seconds: float
) -> tuple[Tally, int]:
    """Bursts of load; between two, with no request in flight, the idle backends killed."""
    tally = Tally()
    async with http_client(base_url, CLIENTS) as client:
        user_id = await create_user(client, f"kills-{time.monotonic_ns()}@example.com")

        async def burst(number: int) -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(
                writers(
                    client,
                    user_id,
                    tally,
                    clients=CLIENTS,
                    stop=stop,
                    prefix=f"idle{number}",
                    pause=PAUSE,
                )
            )
            await asyncio.sleep(INTERVAL)
            stop.set()
            await load  # every client has its answer: no request in flight

        await burst(0)  # the pool fills
        killed = 0
        number = 1
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            killed += await asyncio.to_thread(
                cluster.terminate, database, "state = 'idle'", wait=EXIT_WAIT
            )
            await burst(number)  # meets the dead connections
            number += 1
    return tally, killed


async def busy_kills(
    base_url: str, cluster: DrillCluster, database: str, *, seconds: float
) -> tuple[Tally, int]:
    """Load without a break; any backend killed every `INTERVAL` seconds."""
    tally = Tally()
    stop = asyncio.Event()
    async with http_client(base_url, CLIENTS) as client:
        user_id = await create_user(client, f"kills-{time.monotonic_ns()}@example.com")
        load = asyncio.create_task(
            writers(
                client,
                user_id,
                tally,
                clients=CLIENTS,
                stop=stop,
                prefix="busy",
                pause=PAUSE,
            )
        )
        killed = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(INTERVAL)
            killed += await asyncio.to_thread(cluster.terminate, database)
        stop.set()
        await load
    return tally, killed


def drill(report: Report) -> None:
    seconds = 20.0 if report.full else 3.0
    report.figure(
        "load",
        f"{CLIENTS} clients, {seconds:g} s per phase; idle: bursts of {INTERVAL:g} s, the idle "
        f"backends killed between two; busy: a kill every {INTERVAL:g} s",
    )
    with drill_cluster() as cluster:
        for index, driver in enumerate(DRIVERS):
            database = cluster.fresh_database(f"kills_{driver}")
            url = cluster.url(database, driver)
            with serve(url, HTTP_PORTS[index], f"backend-kills-{driver}") as service:
                idle, idle_killed = asyncio.run(
                    idle_kills(service.url, cluster, database, seconds=seconds)
                )
                busy, busy_killed = asyncio.run(
                    busy_kills(service.url, cluster, database, seconds=seconds)
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
