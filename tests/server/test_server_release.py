"""A5/A6 over real sockets: after thousands of requests, a third of them abandoned by their
client while the handler is inside the database, others cancelled by a deadline middleware,
streams read to the end or cut off, no connection stays checked out and none stays idle in
transaction."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import bindparam, create_engine, text
from srv_clients import abandon_request, abandon_stream
from srv_harness import ProbeServer

pytestmark = pytest.mark.server

TOTAL_REQUESTS = 2000
CONCURRENCY = 32
LOAD_TIME_LIMIT = 50.0


async def run_mixed_load(base_url: str, seed: int) -> Counter[str]:
    """``TOTAL_REQUESTS`` requests, ``CONCURRENCY`` at a time, sync and async endpoints mixed:
    a third abandoned by their client mid-query; the rest in equal shares cancelled by the
    app's deadline middleware (504), completed holds, writes, streams read to the end and
    streams cut off after their first bytes. Returns what happened, by kind."""
    rng = random.Random(seed)
    token = secrets.token_hex(4)
    outcomes: Counter[str] = Counter()
    limiter = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int, client: httpx.AsyncClient) -> None:
        flavour = rng.choice(("sync", "async"))
        kind = rng.choice(("abandon",) * 3 + ("deadline", "hold", "write", "stream", "stream_cut"))
        async with limiter:
            if kind == "abandon":
                await abandon_request(
                    base_url,
                    f"/{flavour}/hold?ms=40",
                    after=rng.uniform(0.005, 0.035),
                    reset=rng.random() < 0.5,
                )
                outcomes[kind] += 1
            elif kind == "stream_cut":
                stream = rng.choice(("stream", "stream-kept"))
                received = await abandon_stream(base_url, f"/{flavour}/{stream}?chunks=50")
                outcomes[f"{kind}:{received.split(b' ')[1].decode()}"] += 1
            else:
                if kind == "hold":
                    response = await client.get(f"/{flavour}/hold?ms=10")
                elif kind == "deadline":
                    deadline_ms = str(rng.randint(5, 35))
                    response = await client.get(
                        f"/{flavour}/hold?ms=40", headers={"x-deadline-ms": deadline_ms}
                    )
                elif kind == "write":
                    response = await client.post(
                        f"/{flavour}/items", json={"name": f"load-{token}-{index}"}
                    )
                else:
                    stream = rng.choice(("stream", "stream-kept"))
                    response = await client.get(f"/{flavour}/{stream}?chunks=5")
                    assert len(response.text.splitlines()) == 5, response.text
                outcomes[f"{kind}:{response.status_code}"] += 1

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        await asyncio.wait_for(
            asyncio.gather(*(one(index, client) for index in range(TOTAL_REQUESTS))),
            timeout=LOAD_TIME_LIMIT,
        )
    return outcomes


def transactions_left_open(server: ProbeServer, backend_ids: list[int]) -> list[object]:
    """The app's connections that sit inside a transaction, seen from the database server."""
    engine = create_engine(server.url)
    try:
        with engine.connect() as connection:
            if server.backend == "postgres":
                rows = connection.execute(
                    text(
                        "SELECT pid, state, query FROM pg_stat_activity "
                        "WHERE application_name = :app AND state LIKE 'idle in transaction%'"
                    ),
                    {"app": f"{server.prefix}app"},
                )
            else:
                rows = connection.execute(
                    text(
                        "SELECT trx_mysql_thread_id, trx_state, trx_query "
                        "FROM information_schema.INNODB_TRX "
                        "WHERE trx_mysql_thread_id IN :ids"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"ids": backend_ids},
                )
            return list(rows.all())
    finally:
        engine.dispose()


def test_every_connection_returns_after_abandoned_requests_and_streams(
    probe: Callable[[str], ProbeServer], backend: str
) -> None:
    server = probe("default")
    log_offset = server.server.log_size()
    started = time.monotonic()
    outcomes = asyncio.run(run_mixed_load(server.base_url, seed=20240611))
    elapsed = time.monotonic() - started
    print(f"{backend}: {TOTAL_REQUESTS} requests in {elapsed:.1f} s: {dict(outcomes)}")

    state = server.wait_pool_idle()
    assert (state["sync"], state["async"]) == (0, 0), state
    completed = {kind: n for kind, n in outcomes.items() if ":" in kind}
    failed = {
        kind: n
        for kind, n in completed.items()
        if "deadline" not in kind and not kind.endswith((":200", ":201"))
    }
    if backend == "sqlite" and failed.get("write:503", 0) <= 3:
        # Known limit (docs/guarantees.md): an aiosqlite query abandoned by a cancellation keeps
        # its statement, and so SQLite's write lock, until the garbage collector finalizes it; a
        # writer that waits longer than busy_timeout meanwhile gets a retryable 503.
        failed.pop("write:503", None)
    assert failed == {}, (outcomes, server.server.log_text(log_offset)[-3000:])
    assert outcomes["deadline:504"] > 50, outcomes
    assert set(completed) & {"deadline:500", "deadline:503"} == set(), outcomes
    assert outcomes["abandon"] > TOTAL_REQUESTS // 4
    assert sum(n for kind, n in outcomes.items() if kind.startswith("stream_cut")) > 100
    if backend != "sqlite":
        ids = list(state["backend_ids"])  # type: ignore[call-overload]
        assert ids, "the app reported no database connection"
        assert transactions_left_open(server, ids) == []
    log = server.server.log_text(log_offset)
    symptoms = ["garbage collector", "was never awaited", "ResourceWarning", "non-checked-in"]
    if backend != "sqlite":
        # On SQLite, a kept stream cut off while its query runs makes SQLAlchemy terminate the
        # aiosqlite connection inside a cancelled scope: the connection is closed and released,
        # but asyncio reports the abandoned graceful-close task as destroyed while pending.
        symptoms.append("Task was destroyed but it is pending")
    for symptom in symptoms:
        assert symptom not in log, log[-4000:]
