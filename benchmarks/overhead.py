"""CPU cost of the visibility features, in process: the benchmark items service (``items_app``)
driven through raw ASGI calls, no server and no HTTP client, so that the process's CPU time
is the app's own.

    python benchmarks/overhead.py --mode off --requests 3000        # CPU µs per request
    python benchmarks/overhead.py --mode on --requests 3000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/overhead.py --mode on --requests 400      # instructions (see below)

Modes: ``off`` (``metrics=False``), ``default`` (the defaults: metrics on), ``on`` (every
feature: metrics, query stats, Server-Timing, a query budget, the slow-query log, Prometheus
and OpenTelemetry spans recorded by an SDK tracer provider). Requests alternate GET by primary
key and POST, ``--concurrency`` of them in flight at once (more than the pool's 15
connections, so requests wait for connection slots). Runs against the database the runner
seeds (PostgreSQL ``bench``, asyncpg); ``--url`` names another.

Under callgrind, run each mode with two request counts and divide the difference of the
instruction totals by the difference of the counts: start-up cancels out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"

MODES: dict[str, dict[str, str]] = {
    "off": {"DATABASE_METRICS": "false"},
    "default": {},
    "on": {
        "DATABASE_METRICS": "true",
        "DATABASE_QUERY_STATS": "true",
        "DATABASE_SERVER_TIMING": "true",
        "DATABASE_QUERY_BUDGET": "20",
        # The check runs on every statement; the threshold is above any statement's wall time
        # here (under callgrind included, where a statement can take seconds), so that the
        # measurement is of the check, not of logging.
        "DATABASE_SLOW_QUERY_THRESHOLD": "60",
        "DATABASE_PROMETHEUS": "true",
        "DATABASE_OPENTELEMETRY": "true",
        "BENCH_OTEL_SDK": "1",
    },
}
# A traced app: FastAPI's own request spans on both sides (the unit spans need a request span
# to nest under).
MODES["traced-off"] = {**MODES["off"], "BENCH_OTEL_SDK": "1", "BENCH_FASTAPI_TRACING": "1"}
MODES["traced-on"] = {**MODES["on"], "BENCH_FASTAPI_TRACING": "1"}
MODES["on-without-otel"] = {
    k: v for k, v in MODES["on"].items() if k not in ("DATABASE_OPENTELEMETRY", "BENCH_OTEL_SDK")
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--url", default=os.environ.get("BENCH_URL", DEFAULT_URL))
    return parser.parse_args()


async def call(app: Any, method: str, path: str, query: bytes) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def drive(app: Any, count: int, concurrency: int, offset: int) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with limit:
            if index % 2:
                status = await call(app, "POST", "/items/", b"name=n&description=d")
            else:
                status = await call(app, "GET", f"/items/{1 + (index + offset) % 10000}", b"")
            if status != 200:
                raise RuntimeError(f"request {index} answered {status}")

    await asyncio.gather(*(one(index) for index in range(count)))


async def main() -> None:
    args = parse_args()
    os.environ.update(MODES[args.mode])
    os.environ["DATABASE_URL"] = args.url
    # Under callgrind everything runs ~50 times slower: no request may give up on a slot.
    os.environ["DATABASE_POOL_TIMEOUT"] = "600"
    sys.path.insert(0, str(HERE))
    from asgi_lifespan import LifespanManager
    from items_app import app

    async with LifespanManager(app, startup_timeout=600, shutdown_timeout=600) as manager:
        await drive(manager.app, args.warmup, args.concurrency, 0)
        cpu = time.process_time()
        wall = time.perf_counter()
        await drive(manager.app, args.requests, args.concurrency, args.warmup)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
    print(
        f"mode={args.mode} requests={args.requests} concurrency={args.concurrency} "
        f"cpu_us_per_request={cpu / args.requests * 1e6:.0f} "
        f"wall_s={wall:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
