"""Schemathesis against the live service on PostgreSQL (asyncpg), from its own OpenAPI schema.

Every operation gets generated requests with valid data and, where it takes input, with
invalid data; each answer must be one the schema documents (status, content type, body) and
never a 5xx. The short run sends a few examples per operation and mode, the full run
thousands in all. Promise: 0 failures.
"""

from __future__ import annotations

import sys
import time

import httpx
import schemathesis
from _cluster import drill_cluster
from _common import HTTP_PORTS, Report, run
from _service import serve
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode


def documented_elsewhere(case: schemathesis.Case) -> bool:
    """A schema-valid cursor the service did not hand out is a 422 by a rule JSON Schema
    cannot state (cursors are opaque): such cases are left out of the valid-data runs only."""
    return isinstance(case.query, dict) and case.query.get("cursor") is not None


def exercise(base_url: str, examples: int) -> tuple[int, int, list[str]]:
    """Runs, examples sent, and the failures (one line each)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    for number in range(1, 4):
        user = httpx.post(
            f"{base_url}/users",
            json={
                "email": f"seed{number}-{time.monotonic_ns()}@example.com",
                "name": "Seed",
                "password": "12345678",
            },
        ).json()
        httpx.post(f"{base_url}/users/{user['id']}/items", json={"name": f"seed {number}"})
    failures: list[str] = []
    runs = sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if operation.definition.raw.get("parameters") or operation.body:
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode)
            if mode is GenerationMode.POSITIVE:
                strategy = strategy.filter(lambda case: not documented_elsewhere(case))
            runs += 1

            @given(case=strategy)
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(base_url=base_url)

            try:
                check()
            except Exception as error:
                first = (
                    str(error).strip().splitlines()[0]
                    if str(error).strip()
                    else type(error).__name__
                )
                failures.append(f"{operation.label} ({mode.value}): {first[:160]}")
    return runs, sent, failures


def drill(report: Report) -> None:
    examples = 150 if report.full else 4
    with drill_cluster() as cluster:
        database = cluster.fresh_database("schemathesis")
        with serve(cluster.url(database, "asyncpg"), HTTP_PORTS[0], "schemathesis") as service:
            runs, sent, failures = exercise(service.url, examples)
        cluster.drop_database(database)
    report.figure("runs (operation x mode)", runs)
    report.figure("requests sent", sent)
    for failure in failures:
        report.figure("failure", failure)
    report.promise("0 failures", not failures, f"{len(failures)} failed runs")


if __name__ == "__main__":
    sys.exit(run("schemathesis", __doc__, drill))
