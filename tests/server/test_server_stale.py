"""C3 over real sockets: pooled connections killed on the server never fail a request."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import bindparam, create_engine, text
from srv_harness import ProbeServer

pytestmark = pytest.mark.server

PING_AFTER_IDLE = 0.5  # the default profile's DATABASE_PING_AFTER_IDLE


async def burst(base_url: str, count: int) -> Counter[int]:
    """``count`` concurrent requests on each flavour, each holding its connection briefly."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.get(f"/{flavour}/hold", params={"ms": 50})
                for flavour in ("sync", "async")
                for _ in range(count)
            )
        )
    return Counter(response.status_code for response in responses)


def kill_app_connections(server: ProbeServer, backend_ids: list[int]) -> int:
    """Kill every live server-side connection of the app; return how many."""
    engine = create_engine(server.url)
    try:
        with engine.connect() as connection:
            if server.backend == "postgres":
                killed = connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :app"
                    ),
                    {"app": f"{server.prefix}app"},
                ).scalar_one()
                return int(killed)
            alive = connection.execute(
                text("SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": backend_ids},
            ).scalars()
            killed = 0
            for thread_id in alive:
                connection.exec_driver_sql(f"KILL {int(thread_id)}")
                killed += 1
            return killed
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_killed_pooled_connections_never_fail_a_request(
    probe: Callable[[str], ProbeServer],
) -> None:
    server = probe("default")
    assert asyncio.run(burst(server.base_url, 10)) == Counter({200: 20})  # warm both pools
    state = server.wait_pool_idle()
    killed = kill_app_connections(server, list(state["backend_ids"]))  # type: ignore[call-overload]
    assert killed >= 2, "expected pooled connections of both flavours to kill"
    time.sleep(PING_AFTER_IDLE * 2)
    assert asyncio.run(burst(server.base_url, 10)) == Counter({200: 20})
