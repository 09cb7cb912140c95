"""A COMMIT cut off mid-way: the answer says the outcome is unknown, and a retry under the
same ``Idempotency-Key`` creates exactly one row however often it comes.

The cut is a real one, made deterministic by the database: the drill cluster is told to wait
for a synchronous standby that does not exist (``synchronous_standby_names``), so every
COMMIT writes its record locally and then waits; the drill terminates the backend waiting
there (``wait_event = 'SyncRep'``). PostgreSQL then closes the connection without answering
the COMMIT, and the transaction has in fact committed. Promises: the POST gets a 503 whose
detail says the outcome is unknown; the same POST sent 100 more times with the same key
leaves exactly one row, with asyncpg and with psycopg.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import Counter

import httpx
from _cluster import DrillCluster, drill_cluster
from _common import HTTP_PORTS, Report, run
from _load import create_user
from _service import serve

DRIVERS = ("asyncpg", "psycopg")
RETRIES = 100
PHRASE = "outcome is unknown"


async def cut_commit(
    base_url: str, cluster: DrillCluster, database: str
) -> tuple[httpx.Response, int, str, dict[str, str]]:
    """POST an item whose COMMIT is cut; the answer, how many backends were terminated at
    their COMMIT, and the request (path, body, key) to retry."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        user_id = await create_user(client, f"unknown-{time.monotonic_ns()}@example.com")
        name = f"cut {uuid.uuid4()}"
        path = f"/users/{user_id}/items"
        key = str(uuid.uuid4())
        await asyncio.to_thread(cluster.set_setting, "synchronous_standby_names", "drills_nowhere")
        try:
            posting = asyncio.create_task(
                client.post(path, json={"name": name}, headers={"Idempotency-Key": key})
            )
            terminated = 0
            deadline = time.monotonic() + 15
            while not terminated and not posting.done() and time.monotonic() < deadline:
                terminated = await asyncio.to_thread(
                    cluster.terminate, database, "wait_event = 'SyncRep'"
                )
                await asyncio.sleep(0.02)
            response = await posting
        finally:
            await asyncio.to_thread(cluster.set_setting, "synchronous_standby_names", None)
    return response, terminated, path, {"name": name, "key": key}


async def retry(base_url: str, path: str, name: str, key: str) -> Counter[int]:
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for _ in range(RETRIES):
            response = await client.post(
                path, json={"name": name}, headers={"Idempotency-Key": key}
            )
            statuses[response.status_code] += 1
    return statuses


def _rows(cluster: DrillCluster, database: str, name: str) -> int:
    found = cluster.execute(
        "SELECT count(*) FROM demo_items WHERE name = :name",
        database=database,
        params={"name": name},
    )
    return int(found[0][0])


def drill(report: Report) -> None:
    with drill_cluster() as cluster:
        for index, driver in enumerate(DRIVERS):
            database = cluster.fresh_database(f"unknown_{driver}")
            with serve(
                cluster.url(database, driver), HTTP_PORTS[index], f"unknown-outcome-{driver}"
            ) as service:
                response, terminated, path, sent = asyncio.run(
                    cut_commit(service.url, cluster, database)
                )

                after_cut = _rows(cluster, database, sent["name"])
                statuses = asyncio.run(retry(service.url, path, sent["name"], sent["key"]))
                after_retries = _rows(cluster, database, sent["name"])
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text[:200]
            report.figure(f"{driver} cut COMMIT answer", f"{response.status_code} {detail}")
            report.figure(f"{driver} backends terminated at COMMIT", terminated)
            report.figure(f"{driver} rows after the cut", after_cut)
            report.figure(f"{driver} {RETRIES} retries answered", dict(statuses))
            report.figure(f"{driver} rows after the retries", after_retries)
            report.promise(
                f"{driver}: the cut COMMIT answers 503 '{PHRASE}'",
                terminated > 0 and response.status_code == 503 and PHRASE in detail,
                f"{response.status_code}",
            )
            report.promise(
                f"{driver}: {RETRIES} retries with the key leave exactly one row",
                after_retries == 1,
                f"{after_retries} rows",
            )
            cluster.drop_database(database)


if __name__ == "__main__":
    sys.exit(run("unknown_outcome", __doc__, drill))
