"""Read replicas and failover, measured on real PostgreSQL streaming replication.

Run as root (it builds its own clusters with ``pg_createcluster`` on ports 5445-5448 and
drops them at the end), with the project's own environment (``pip install -e ".[test]"``):

    python benchmarks/replicas.py reads     # GET /items/{id} at c=64: no replica, one replica,
                                            # one replica + a bookmark on every request
    python benchmarks/replicas.py failover  # seconds from promotion to the first write
    python benchmarks/replicas.py routing   # the Python cost of routing one request (no server)

``reads`` serves ``items_app`` (async, ``unit_of_work(readonly=True)`` reads) under one
uvicorn worker and drives it with wrk; it reports requests/s and the app process's CPU time
per request. The cell "the primary as its own replica" runs all the routing against one
server, so that its difference to "no replica" is what routing costs in the app, without a
second server competing for the cores. ``failover`` serves the same app with a two-host primary URL
(``target_session_attrs=read-write``), writes in a loop, stops the primary, promotes the
replica, and reports the seconds from the promote command to the first 2xx write.
``routing`` times, in-process and without any server, each step a request takes with replicas
configured that it does not take without: reading the bookmark from its headers, choosing a
replica, the response headers, the watch on the response start. On a busy machine wrk's
numbers swing by more than these costs; this is the steady measure of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import harness  # noqa: E402
from tests.replicas.clusters import (  # noqa: E402
    Replication,
    build_pair,
    drop_leftovers,
    failover_url,
    tools_problem,
    wait_for_replay,
)

GET_LUA = """
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local bookmark = os.getenv("BOOKMARK")
request = function()
  local headers = {}
  if bookmark ~= nil and bookmark ~= "" then headers["X-DB-Bookmark"] = bookmark end
  return wrk.format("GET", "/items/" .. math.random(1, 10000), headers)
end
"""


@contextlib.contextmanager
def serve(env: dict[str, str]) -> Iterator[harness.Server]:
    port = harness.free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    command = [sys.executable, "-m", "uvicorn", "items_app:app", "--port", str(port)]
    command += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=HERE, env={**clean, **env})
    server = harness.Server(process, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/items/1", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the app did not start") from None
                time.sleep(0.2)
        yield server
    finally:
        harness.stop(process)


def wrk_get(server: harness.Server, duration: float, bookmark: str | None) -> harness.WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(GET_LUA)
    try:
        done = subprocess.run(
            [
                harness.require_wrk(),
                "-t2",
                "-c64",
                f"-d{round(duration)}s",
                "--latency",
                "-s",
                lua.name,
                server.url,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "BOOKMARK": bookmark or ""},
            timeout=duration + 60,
        )
    finally:
        os.unlink(lua.name)
    return harness.parse_wrk(done.stdout)


def reads(args: argparse.Namespace) -> None:
    drop_leftovers(range(5445, 5447))
    pair_iterator = build_pair(5445, 5446)
    pair = next(pair_iterator)
    try:
        primary = pair.primary.url("asyncpg")
        subprocess.run(
            [sys.executable, "seed_items.py", pair.primary.url(), "--create"], cwd=HERE, check=True
        )
        wait_for_replay(pair.primary, pair.replica)
        bookmark = str(pair.primary.execute("SELECT pg_current_wal_insert_lsn()::text"))
        cells = {
            "no replica": ({"DATABASE_URL": primary}, None),
            # All the routing (monitors, choice, headers), none of a second server's work:
            # what routing costs in the app, apart from the competition for the cores.
            "the primary as its own replica": (
                {"DATABASE_URL": primary, "DATABASE_REPLICA_URLS": primary},
                None,
            ),
            "one replica": (
                {"DATABASE_URL": primary, "DATABASE_REPLICA_URLS": pair.replica.url("asyncpg")},
                None,
            ),
            "one replica, bookmark on every request": (
                {"DATABASE_URL": primary, "DATABASE_REPLICA_URLS": pair.replica.url("asyncpg")},
                bookmark,
            ),
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in cells}
        for round_number in range(args.rounds):
            for name, (env, sent) in cells.items():
                with serve(env) as server:
                    wrk_get(server, args.warmup, sent)
                    before = harness.cpu_seconds(server.process.pid)
                    result = wrk_get(server, args.duration, sent)
                    cpu = harness.cpu_seconds(server.process.pid) - before
                per_request = cpu / result.requests * 1e6
                errors = result.non_2xx + result.socket_errors + result.timeouts
                results[name].append((result.requests_per_second, per_request))
                print(
                    f"round {round_number + 1} {name}: {result.requests_per_second:.0f} req/s, "
                    f"{per_request:.0f} µs CPU/request, errors {errors}",
                    flush=True,
                )
        summary = {
            name: {
                "requests_per_second": statistics.median(r for r, _ in runs),
                "app_cpu_us_per_request": statistics.median(c for _, c in runs),
            }
            for name, runs in results.items()
        }
        print(json.dumps(summary, indent=2))
    finally:
        pair_iterator.close()


def failover(args: argparse.Namespace) -> None:
    drop_leftovers(range(5447, 5449))
    seconds: list[float] = []
    for round_number in range(args.rounds):
        pair_iterator = build_pair(5447, 5448)
        pair = next(pair_iterator)
        try:
            seconds.append(_one_failover(pair))
            print(f"round {round_number + 1}: {seconds[-1]:.2f} s", flush=True)
        finally:
            pair_iterator.close()
    print(
        json.dumps(
            {"promotion_to_first_write_seconds": seconds, "median": statistics.median(seconds)}
        )
    )


def _one_failover(pair: Replication) -> float:
    subprocess.run(
        [sys.executable, "seed_items.py", pair.primary.url(), "--create"], cwd=HERE, check=True
    )
    wait_for_replay(pair.primary, pair.replica)
    env = {
        "DATABASE_URL": failover_url(pair, "asyncpg"),
        "DATABASE_REPLICA_URLS": pair.replica.url("asyncpg"),
        "DATABASE_POOL_TIMEOUT": "2",
    }
    with serve(env) as server:
        assert _write(server) == 200
        pair.primary.stop()
        assert _write(server) == 503
        promoted = time.monotonic()
        pair.replica.promote()
        while _write(server) != 200:
            if time.monotonic() - promoted > 60:
                raise RuntimeError("writes did not resume within 60 s")
            time.sleep(0.01)
        return time.monotonic() - promoted


def _write(server: harness.Server) -> int:
    request = urllib.request.Request(
        f"{server.url}/items/?name=failover&description=write", method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def routing(args: argparse.Namespace) -> None:
    import asyncio
    import timeit

    from sessionscope import DatabaseConfig
    from sessionscope._bookmarks import presented_bookmark
    from sessionscope._engines import flavour_urls
    from sessionscope._replicas import ReplicaSet
    from sessionscope._routing import ResponseWatch, with_replica_headers
    from sessionscope._runtime import Runtime, connection_options
    from sessionscope._unit import UnitOfWork

    primary = "postgresql+asyncpg://app@127.0.0.1:9/shop"
    config = DatabaseConfig(url=primary, replicas=["postgresql+asyncpg://app@127.0.0.1:8/shop"])
    replicas = ReplicaSet(config)
    replicas.create_engines(
        flavour_urls(config), {"async"}, connection_options("postgresql", "readonly")
    )
    for replica in replicas.replicas:  # as its monitor finds it: answering, caught up
        replica.answering, replica.lag, replica.replay_lsn = True, 0.0, 1 << 40
    plain = Runtime(DatabaseConfig(url=primary))
    unit = UnitOfWork(object(), config, mode="readonly", policy="success")
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"python-httpx/0.28"),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"connection", b"keep-alive"),
    ]
    bookmarked = [*headers, (b"x-db-bookmark", b"0/3000148")]
    message = {"type": "http.response.start", "status": 200, "headers": headers}

    async def send(_message: dict[str, object]) -> None:
        return None

    async def messages(count: int, watch: bool) -> float:
        target = ResponseWatch(send).send if watch else send
        started = time.perf_counter()
        for _ in range(count):
            await target(message)
        return time.perf_counter() - started

    loop = asyncio.new_event_loop()
    steps = {
        "bind_for without replicas (the baseline decision)": lambda: plain.async_bind_for(unit),
        "read the bookmark header (none sent)": lambda: presented_bookmark(
            headers, b"x-db-bookmark", None
        ),
        "read the bookmark header (one sent)": lambda: presented_bookmark(
            bookmarked, b"x-db-bookmark", None
        ),
        "choose a replica (no bookmark)": lambda: replicas.pick("async", 0),
        "choose a replica (bookmark check)": lambda: replicas.pick("async", 50_331_976),
        "response headers (no bookmark to send)": lambda: with_replica_headers(
            message, unit, config
        ),
    }
    results = {}
    for name, step in steps.items():
        best = min(timeit.repeat(step, number=20_000, repeat=5)) / 20_000 * 1e6
        results[name] = round(best, 2)
        print(f"{name}: {best:.2f} µs", flush=True)
    # Two messages per response (start, body) pass through the watch.
    watched = min(loop.run_until_complete(messages(100_000, True)) for _ in range(5))
    direct = min(loop.run_until_complete(messages(100_000, False)) for _ in range(5))
    name = "watch the response start (2 messages)"
    results[name] = round((watched - direct) / 100_000 * 2 * 1e6, 2)
    print(f"{name}: {results[name]:.2f} µs", flush=True)
    loop.close()
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["reads", "failover", "routing"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured cell")
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    if args.what == "routing":
        routing(args)
        return
    problem = tools_problem()
    if problem is not None:
        sys.exit(f"cannot build a streaming replica: {problem}")
    (reads if args.what == "reads" else failover)(args)


if __name__ == "__main__":
    main()
