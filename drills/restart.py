"""Database restart under load, with asyncpg and with psycopg.

32 clients write items (POST, then GET of what they wrote) while the drill cluster is stopped
with ``-m immediate`` (every backend dies at once, as in a crash), left down a few seconds,
and started again. Promises: no 500 (every failure is a 503 with ``Retry-After``), no
connection dropped and no request hung, every write answered 2xx is in the database
afterwards, none twice, and the service writes again once the database is back.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _cluster import DrillCluster, drill_cluster
from _common import HTTP_PORTS, Report, run
from _load import Tally, create_user, http_client, writers
from _service import serve

CLIENTS = 32
DRIVERS = ("asyncpg", "psycopg")


async def restarts(
    base_url: str, cluster: DrillCluster, *, cycles: int, down: float, up: float
) -> tuple[Tally, float | None]:
    """The load, with ``cycles`` restarts; the tally and the seconds from the last start to
    the first 2xx after it."""
    tally = Tally()
    stop = asyncio.Event()
    async with http_client(base_url, CLIENTS) as client:
        user_id = await create_user(client, f"restart-{time.monotonic_ns()}@example.com")
        load = asyncio.create_task(
            writers(client, user_id, tally, clients=CLIENTS, stop=stop, prefix="restart")
        )
        await asyncio.sleep(up)
        recovery: float | None = None
        for _ in range(cycles):
            await asyncio.to_thread(cluster.stop_immediately)
            await asyncio.sleep(down)
            await asyncio.to_thread(cluster.start)
            started = time.monotonic()
            await asyncio.sleep(up)
            recovery = tally.first_success_after(started)
        stop.set()
        await load
    return tally, recovery


def drill(report: Report) -> None:
    cycles, down, up = (3, 5.0, 6.0) if report.full else (1, 1.5, 1.5)
    report.figure("load", f"{CLIENTS} clients, {cycles} restart(s), {down:g} s down each")
    with drill_cluster() as cluster:
        for index, driver in enumerate(DRIVERS):
            database = cluster.fresh_database(f"restart_{driver}")
            url = cluster.url(database, driver)
            with serve(url, HTTP_PORTS[index], f"restart-{driver}") as service:
                tally, recovery = asyncio.run(
                    restarts(service.url, cluster, cycles=cycles, down=down, up=up)
                )
            rows = cluster.execute(
                "SELECT name, count(*) FROM demo_items GROUP BY name", database=database
            )
            counts = {name: int(count) for name, count in rows}
            lost = [name for name in tally.acknowledged if name not in counts]
            twice = [name for name, count in counts.items() if count > 1]
            report.figure(f"{driver} answers", tally.summary())
            report.figure(f"{driver} 503 details", dict(tally.details))
            report.figure(
                f"{driver} first 2xx after start (s)",
                None if recovery is None else round(recovery, 2),
            )
            report.promise(f"{driver}: 0 x 500", tally.server_errors == 0, tally.summary())
            report.promise(
                f"{driver}: every 503 has Retry-After",
                tally.without_retry_after == 0,
                f"{tally.without_retry_after} without",
            )
            report.promise(
                f"{driver}: no dropped or hung request",
                not tally.transport_errors,
                f"{sum(tally.transport_errors.values())} dropped, {tally.hung} hung",
            )
            report.promise(
                f"{driver}: 0 acknowledged writes lost",
                not lost,
                f"{len(tally.acknowledged)} acknowledged, {len(lost)} lost",
            )
            report.promise(f"{driver}: no duplicate rows", not twice, f"{len(twice)} duplicated")
            report.promise(
                f"{driver}: writes resume after the restart",
                recovery is not None,
                "none" if recovery is None else f"first 2xx {recovery:.2f} s after start",
            )
            cluster.drop_database(database)


if __name__ == "__main__":
    sys.exit(run("restart", __doc__, drill))
