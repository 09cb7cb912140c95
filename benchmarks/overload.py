"""Overload: 1,000 and 2,000 concurrent clients against the example service on a pool of 5.

Each client has its own kept-alive connection and reads an item (``GET /items/{id}``: one
query) again
and again for ``--seconds``; after a 503 it waits its ``Retry-After`` as a well-behaved client
does. The pool (``pool_size=5, max_overflow=0``, ``pool_timeout=5``) cannot serve them all
within its wait. Each crowd runs twice in one go: with ``shed_overload`` off (a refused
request waits the whole ``pool_timeout`` for its 503) and on (it is refused at once when the
queue cannot drain in time). Printed: the count and p50/p99 latency of 2xx and of 503
answers, and the requests left without an answer.

Promise: with shedding on, p99 of the 503s is under 1 s, with no fewer 2xx than with it off
(within 5 %), and every request gets an answer. Exits 1 otherwise.

    python benchmarks/overload.py --seconds 10

Root is needed for the cluster (port 5453); the service listens on 127.0.0.1:8453-8454.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

from faults_harness import HTTP_PORTS, latency, own_cluster, percentile, seed_item, serve_demo

CROWDS = (1000, 2000)
SETTINGS = {
    "DATABASE_POOL_SIZE": "5",
    "DATABASE_MAX_OVERFLOW": "0",
    "DATABASE_POOL_TIMEOUT": "5",
}
ANSWER_TIMEOUT = 60.0
"""A request without an answer after this counts as left hanging."""


async def ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, float]:
    """Send one request on a kept-alive connection; its status and its ``Retry-After``."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, float(headers.get("retry-after", "0"))


async def crowd(port: int, item_id: int, clients: int, seconds: float) -> dict[str, list[float]]:
    """``clients`` clients, each on its own connection (plain asyncio streams: a client
    library's own overhead at 2,000 connections would be what this measures)."""
    found: dict[str, list[float]] = {"2xx": [], "503": [], "other": [], "hung": []}
    request = f"GET /items/{item_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    deadline = time.monotonic() + seconds

    async def one_client() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection("127.0.0.1", port)
                status, retry_after = await asyncio.wait_for(
                    ask(*connection, request), ANSWER_TIMEOUT
                )
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                found["hung"].append(time.perf_counter() - started)
                if connection is not None:
                    connection[1].close()
                connection = None
                continue
            took = time.perf_counter() - started
            if status < 300:
                found["2xx"].append(took)
            elif status == 503:
                found["503"].append(took)
                # The server may close a connection idle that long: come back on a new one.
                connection[1].close()
                connection = None
                await asyncio.sleep(retry_after)
            else:
                found["other"].append(took)
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 10000)), hard))
    broken: list[str] = []
    with own_cluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        for clients in CROWDS:
            served: dict[str, int] = {}
            for shed in ("false", "true"):
                env = {**SETTINGS, "DATABASE_SHED_OVERLOAD": shed}
                log = Path(workdir) / f"service-{clients}-{shed}.log"
                with serve_demo(cluster, env, HTTP_PORTS[0], log) as base_url:
                    _user_id, item_id = seed_item(base_url, "overload")
                    found = asyncio.run(crowd(HTTP_PORTS[0], item_id, clients, arguments.seconds))
                served[shed] = len(found["2xx"])
                print(
                    f"{clients} clients, shed_overload={shed}: "
                    f"2xx {len(found['2xx'])} ({latency(found['2xx'])}); "
                    f"503 {len(found['503'])} ({latency(found['503'])}); "
                    f"other {len(found['other'])}; no answer {len(found['hung'])}",
                    flush=True,
                )
                if shed == "true":
                    p99 = percentile(found["503"], 0.99)
                    if found["503"] and p99 >= 1.0:
                        broken.append(f"{clients} clients: p99 of 503s {p99:.2f} s")
                    if found["hung"] or found["other"]:
                        broken.append(f"{clients} clients: requests without a 2xx/503 answer")
            if served["true"] < 0.95 * served["false"]:
                broken.append(f"{clients} clients: {served['true']} 2xx shed vs {served['false']}")
    for problem in broken:
        print(f"BROKEN: {problem}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
