"""How many connections each worker may open, so that all of them fit the server."""

from __future__ import annotations

import math


def per_worker_capacity(
    max_connections: int, reserved: int, workers: int, machines: int, engines: int = 1
) -> int:
    """``pool_size + max_overflow`` of each engine, without PgBouncer.

    Every worker of every machine may fill its pools: ``workers * machines * engines *
    (pool_size + max_overflow)`` must stay within ``max_connections - reserved`` (superuser
    slots, migrations, consoles, replication, monitoring). ``engines`` is 2 when the app uses
    both sync and async sessions.
    """
    capacity = (max_connections - reserved) // (workers * machines * engines)
    if capacity < 1:
        raise ValueError("more workers than connections: put PgBouncer in front")
    return capacity


def pgbouncer_pool_size(max_connections: int, reserved: int, bouncers: int) -> int:
    """PgBouncer's ``default_pool_size`` (one database, one user): the server connections
    are shared by every client, so only the PgBouncers count, not the workers."""
    return (max_connections - reserved) // bouncers


def clients_per_bouncer(workers: int, machines: int, capacity: int, bouncers: int) -> int:
    """PgBouncer's ``max_client_conn``: every worker's pool may be full at once."""
    return math.ceil(workers * machines * capacity / bouncers)
