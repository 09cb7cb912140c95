"""Numbers of the "Scaling out" page: PgBouncer against direct connections, NullPool against a
small pool behind PgBouncer, and the cost of ``unit_of_work(retries=N)`` when nothing retries.

Runs ``items_scaling.py`` under one uvicorn worker with this interpreter (sessionscope, uvicorn
and asyncpg installed), drives it with wrk at ``--concurrency`` and samples the server
connections PostgreSQL holds for the database meanwhile (``pg_stat_activity``). PgBouncer runs
in transaction mode with ``default_pool_size=--bouncer-pool`` on a port of 6432-6439.

    python benchmarks/scaling.py --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import HERE, REPO, cpu_seconds, free_port, run_wrk
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(REPO))
from tests.pgbouncer import run_pgbouncer

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = os.environ.get("BENCH_POSTGRES_DATABASE", "bench_scaling")

SCENARIOS: dict[str, dict[str, str]] = {
    "direct": {},
    "pgbouncer": {"DATABASE_PGBOUNCER": "true"},
    "pgbouncer-nullpool": {"DATABASE_PGBOUNCER": "true", "SCALING_NULLPOOL": "1"},
    "direct-retries-3": {"SCALING_RETRIES": "3"},
}


def prepare_database() -> str:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DATABASE}
        ).first()
        if exists is None:
            connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    url = make_url(ADMIN_URL).set(database=DATABASE).render_as_string(hide_password=False)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS items"))
        connection.execute(
            text(
                "CREATE TABLE items (id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL, "
                "description VARCHAR(255) NOT NULL)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO items (name, description) SELECT 'item-' || n, 'seeded row ' || n "
                "FROM generate_series(1, 10000) AS n"
            )
        )
    engine.dispose()
    return url


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SCALING_"))}
    command = [sys.executable, "-m", "uvicorn", "items_scaling:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=HERE, env={**clean, **env}, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start; see {log}")
            try:
                with urllib.request.urlopen(f"{base}/items/1", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ConnectionSampler:
    """The largest number of server connections to the database seen while it runs."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(url, pool_size=1, max_overflow=0)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
        )
        while not self._stop.wait(0.1):
            with self._engine.connect() as connection:
                count = int(connection.execute(query, {"d": DATABASE}).scalar_one())
            self.peak = max(self.peak, count)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--bouncer-pool", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--output", type=Path, default=HERE / ".results" / "scaling.json")
    args = parser.parse_args()
    url = prepare_database()
    async_url = make_url(url).set(drivername="postgresql+asyncpg")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    log = args.output.with_suffix(".log")
    results = []
    with run_pgbouncer(url, pool_size=args.bouncer_pool) as bouncer:
        bounced = bouncer.set(drivername="postgresql+asyncpg")
        for name in args.scenarios.split(","):
            env = dict(SCENARIOS[name])
            target = bounced if "DATABASE_PGBOUNCER" in env else async_url
            env["DATABASE_URL"] = target.render_as_string(hide_password=False)
            with serve(env, log) as (base, pid):
                for script in ("get", "post"):
                    # Warm up, then measure.
                    run_wrk(base, script, connections=args.concurrency, duration=1)
                    cpu_before = cpu_seconds(pid)
                    with ConnectionSampler(url) as sampler:
                        result = run_wrk(
                            base, script, connections=args.concurrency, duration=args.duration
                        )
                    cpu = cpu_seconds(pid) - cpu_before
                    row = {
                        "scenario": name,
                        "route": script.upper(),
                        "rps": round(result.requests_per_second),
                        "p50_ms": result.p50_ms,
                        "p99_ms": result.p99_ms,
                        "errors": result.non_2xx + result.socket_errors + result.timeouts,
                        "app_cpu_us_per_req": round(cpu / max(result.requests, 1) * 1e6),
                        "server_connections_peak": sampler.peak,
                    }
                    results.append(row)
                    print(json.dumps(row), flush=True)
    args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
