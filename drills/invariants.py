"""Invariants under concurrent requests, on SQLite, PostgreSQL and MariaDB.

Three races, each run several times on each database through the live service:
twenty sign-ups with one email address (exactly one 201, the others 409, one row); twenty
users changing their email to the same new address at once (exactly one 200, the others
409, one owner); twenty item creations racing the deletion of their owner (no item left
without its owner). Promises: those counts, and never a 500.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from _common import HTTP_PORTS, Report, run
from _load import create_user
from _service import backend_database, scalar, serve

BACKENDS = ("sqlite", "postgres", "mariadb")
WIDTH = 20


async def races(base_url: str, rounds: int) -> dict[str, Counter[str]]:
    seen: dict[str, Counter[str]] = {"signup": Counter(), "email": Counter(), "delete": Counter()}
    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=WIDTH + 1)
    ) as client:
        for number in range(rounds):
            stamp = f"{number}-{time.monotonic_ns()}"
            email = f"race-{stamp}@example.com"
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/users",
                        json={"email": email, "name": "Racer", "password": "racer-password"},
                    )
                    for _ in range(WIDTH)
                )
            )
            statuses = Counter(answer.status_code for answer in answers)
            seen["signup"]["rounds with exactly one 201"] += statuses == Counter(
                {201: 1, 409: WIDTH - 1}
            )
            seen["signup"].update(f"status {status}" for status in statuses.elements())

            users = [
                await create_user(client, f"mover-{stamp}-{n}@example.com") for n in range(WIDTH)
            ]
            target = f"taken-{stamp}@example.com"
            answers = await asyncio.gather(
                *(client.patch(f"/users/{user}", json={"email": target}) for user in users)
            )
            statuses = Counter(answer.status_code for answer in answers)
            seen["email"]["rounds with exactly one 200"] += statuses == Counter(
                {200: 1, 409: WIDTH - 1}
            )
            seen["email"].update(f"status {status}" for status in statuses.elements())

            owner = await create_user(client, f"owner-{stamp}@example.com")
            creations = [
                client.post(f"/users/{owner}/items", json={"name": f"orphan? {n}"})
                for n in range(WIDTH)
            ]
            answers = await asyncio.gather(
                *creations[: WIDTH // 2], client.delete(f"/users/{owner}"), *creations[WIDTH // 2 :]
            )
            seen["delete"].update(f"status {answer.status_code}" for answer in answers)
    return seen


def drill(report: Report) -> None:
    rounds = 30 if report.full else 3
    report.figure("races", f"{rounds} rounds of each race, {WIDTH} requests wide, per database")
    with tempfile.TemporaryDirectory(prefix="drills-invariants-") as directory:
        for index, backend in enumerate(BACKENDS):
            with backend_database(backend, Path(directory)) as url:
                with serve(url, HTTP_PORTS[index], f"invariants-{backend}") as service:
                    seen = asyncio.run(races(service.url, rounds))
                orphans = int(
                    scalar(  # type: ignore[arg-type]
                        url,
                        "SELECT count(*) FROM demo_items"
                        " WHERE owner_id NOT IN (SELECT id FROM demo_users)",
                    )
                )
                duplicates = int(
                    scalar(  # type: ignore[arg-type]
                        url,
                        "SELECT count(*) FROM (SELECT email FROM demo_users GROUP BY email"
                        " HAVING count(*) > 1) AS twice",
                    )
                )
            for race, counts in seen.items():
                report.figure(f"{backend} {race}", dict(counts))
            report.figure(f"{backend} orphans / duplicate emails", f"{orphans} / {duplicates}")
            errors = sum(
                count
                for counts in seen.values()
                for key, count in counts.items()
                if key.startswith("status 5") and key != "status 503"
            )
            report.promise(f"{backend}: 0 x 500", errors == 0, f"{errors}")
            report.promise(
                f"{backend}: one sign-up wins, the others 409",
                seen["signup"]["rounds with exactly one 201"] == rounds,
                f"{seen['signup']['rounds with exactly one 201']} of {rounds} rounds",
            )
            report.promise(
                f"{backend}: one email change wins, the others 409",
                seen["email"]["rounds with exactly one 200"] == rounds,
                f"{seen['email']['rounds with exactly one 200']} of {rounds} rounds",
            )
            report.promise(
                f"{backend}: no orphan item, no email twice",
                orphans == 0 and duplicates == 0,
                f"{orphans} orphans, {duplicates} emails twice",
            )


if __name__ == "__main__":
    sys.exit(run("invariants", __doc__, drill))
