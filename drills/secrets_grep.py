"""No secret in the logs: the database password and SQL parameters never reach them.

The service connects as a role with a password (SCRAM on the drill cluster). This drill sends
values that become SQL parameters (emails, names, passwords carrying a marker), provokes the
failures most likely to log them (integrity errors of duplicate sign-ups, backends killed
mid-request, the database stopped), then reads every log of the run's log directory (the
other drills' services too, when the runner ran them first). Promise: 0 lines that hold the
password or a marker.
"""

from __future__ import annotations

import asyncio
import secrets as random_tokens  # the standard library's
import sys
import time

import httpx
from _cluster import DrillCluster, drill_cluster
from _common import HTTP_PORTS, Report, log_dir, run
from _service import serve


async def provoke(base_url: str, cluster: DrillCluster, database: str, marker: str) -> int:
    sent = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        user = {"email": f"{marker}@example.com", "name": marker, "password": f"{marker}-pw"}
        for _ in range(3):  # the second and third: 409 from the unique index
            await client.post("/users", json=user)
            sent += 1
        users = await client.get("/users")
        owner = users.json()["items"][0]["id"]
        await asyncio.gather(
            *(
                client.post(
                    f"/users/{owner}/items", json={"name": f"{marker} {n}", "description": marker}
                )
                for n in range(20)
            ),
            asyncio.to_thread(cluster.terminate, database),
        )
        sent += 20
        await asyncio.to_thread(cluster.stop_immediately)
        try:
            for n in range(5):
                await client.post(f"/users/{owner}/items", json={"name": f"{marker} down {n}"})
                await client.get("/readyz")
                sent += 2
        finally:
            await asyncio.to_thread(cluster.start)
        for n in range(5):
            await client.patch(f"/users/{owner}", json={"password": f"{marker}-new-{n}"})
            sent += 1
    return sent


def drill(report: Report) -> None:
    marker = f"drillmarker{random_tokens.token_hex(6)}"
    with drill_cluster() as cluster:
        database = cluster.fresh_database("secrets")
        with serve(cluster.url(database, "asyncpg"), HTTP_PORTS[0], "secrets") as service:
            sent = asyncio.run(provoke(service.url, cluster, database, marker))
            time.sleep(0.5)
        cluster.drop_database(database)
        password = cluster.password
    report.figure("requests carrying the marker", sent)
    files = sorted(path for path in log_dir().glob("*.log") if path.is_file())
    size = sum(path.stat().st_size for path in files)
    hits: dict[str, int] = {"password": 0, "parameters": 0}
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            hits["password"] += password in line
            hits["parameters"] += marker in line
    report.figure("logs read", f"{len(files)} files, {size} bytes in {log_dir()}")
    report.figure(
        "lines with the password / a parameter", f"{hits['password']} / {hits['parameters']}"
    )
    report.promise("logs were read", bool(files) and size > 0, f"{len(files)} files")
    report.promise(
        "0 lines with the database password", hits["password"] == 0, str(hits["password"])
    )
    report.promise("0 lines with SQL parameters", hits["parameters"] == 0, str(hits["parameters"]))


if __name__ == "__main__":
    sys.exit(run("secrets", __doc__, drill))
