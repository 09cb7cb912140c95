"""What the fault benchmarks (``idle_kills.py``, ``overload.py``) share: a PostgreSQL cluster of
their own, the example service under uvicorn on loopback, a user and an item to read, and
latency figures.

Run as root (``pg_createcluster``): the cluster is made on port 5453, under a name that
`tests.replicas.clusters.drop_leftovers` recognises, and dropped at the end, on failure too.
The service listens on 127.0.0.1:8453-8455 and is stopped at the end; every load is bounded in
time.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.replicas.clusters import (  # noqa: E402
    DATABASE,
    Cluster,
    create_primary,
    drop_cluster,
    drop_leftovers,
)

CLUSTER_PORT = 5453
HTTP_PORTS = (8453, 8454, 8455)
STARTUP_TIMEOUT = 60.0


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A fresh PostgreSQL cluster on `CLUSTER_PORT`, dropped when the block ends."""
    drop_leftovers(range(CLUSTER_PORT, CLUSTER_PORT + 1))
    cluster = create_primary(f"ssrfaults{CLUSTER_PORT}", CLUSTER_PORT)
    try:
        yield cluster
    finally:
        drop_cluster(cluster.version, cluster.name)


@contextmanager
def serve_demo(cluster: Cluster, env: Mapping[str, str], port: int, log: Path) -> Iterator[str]:
    """The example service (``sessionscope-demo``: migrations, then uvicorn) on the cluster's
    database, with ``env`` (``DATABASE_*``) on top; yields its base URL."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    environment.update(
        {
            "DATABASE_URL": cluster.url("asyncpg"),
            "LOG_LEVEL": "warning",
            # The demo's password hashing is not what these runs measure.
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "1024",
            **env,
        }
    )
    command = [
        sys.executable, "-c", "from sessionscope_demo.command import run; run()",
        "serve", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited: see {log}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service did not answer within {STARTUP_TIMEOUT} s")
            time.sleep(0.2)
        yield base_url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(20)


def seed_item(base_url: str, tag: str) -> tuple[int, int]:
    """A user and one item of theirs: ``(user_id, item_id)``."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        user = client.post(
            "/users",
            json={"email": f"{tag}-{time.monotonic_ns()}@example.com", "password": "s3cret-pass"},
        )
        user.raise_for_status()
        user_id = int(user.json()["id"])
        item = client.post(f"/users/{user_id}/items", json={"name": "probe"})
        item.raise_for_status()
        return user_id, int(item.json()["id"])


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latency(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p99 {percentile(values, 0.99) * 1000:.0f}"
        f" ms, mean {statistics.fmean(values) * 1000:.0f} ms"
    )


def admin_url(cluster: Cluster) -> str:
    return cluster.url("psycopg", DATABASE)
