"""Overflow connections stay warm: reused instead of reopened, closed once idle too long."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import Engine, NullPool, QueuePool, event
from sqlalchemy import exc as sa_exc

from sessionscope import ConfigurationError, Database
from sessionscope._pool import AsyncKeepWarmQueuePool, KeepWarmQueuePool


def count_connects(engine: Engine) -> list[int]:
    """A one-item list holding how many DBAPI connections ``engine`` has opened so far."""
    opened = [0]

    @event.listens_for(engine, "connect")
    def _on_connect(*_: Any) -> None:
        opened[0] += 1

    return opened


def hold(engine: Engine, count: int) -> ExitStack:
    stack = ExitStack()
    for _ in range(count):
        stack.enter_context(engine.connect()).exec_driver_sql("SELECT 1")
    return stack


def test_returned_overflow_connections_are_reused(database_url: str) -> None:
    db = Database(database_url, pool_size=1, max_overflow=2, ping_after_idle=None)
    engine = db.sync_engine
    pool = engine.pool
    assert isinstance(pool, KeepWarmQueuePool)
    opened = count_connects(engine)
    try:
        with hold(engine, 3):
            assert pool.checkedout() == 3
        assert opened[0] == 3
        assert pool.checkedout() == 0
        assert pool.spares() == 2
        assert pool.checkedin() == 3
        for _ in range(3):
            with hold(engine, 3):
                pass
        assert opened[0] == 3, "a returned overflow connection was closed and reopened"
    finally:
        engine.dispose()


def test_idle_spares_are_closed_after_the_timeout(database_url: str) -> None:
    db = Database(database_url, pool_size=1, max_overflow=2, overflow_idle_timeout=0.2)
    engine = db.sync_engine
    pool = engine.pool
    assert isinstance(pool, KeepWarmQueuePool)
    opened = count_connects(engine)
    closed = [0]

    @event.listens_for(engine, "close")
    def _on_close(*_: Any) -> None:
        closed[0] += 1

    try:
        with hold(engine, 3):
            pass
        assert pool.spares() == 2
        time.sleep(0.3)
        with hold(engine, 1):
            # One per checkout or return: no request pays for closing them all.
            assert closed[0] == 1
            assert pool.spares() == 1
        assert closed[0] == 2
        assert pool.spares() == 0
        assert pool.checkedin() == 1
        # The closed spares no longer count against max_overflow: three fit again.
        with hold(engine, 3):
            assert pool.checkedout() == 3
        assert opened[0] == 5
    finally:
        engine.dispose()


def test_the_limit_still_holds_with_spares(tmp_path: Path) -> None:
    db = Database(
        f"sqlite:///{tmp_path / 'limit.db'}", pool_size=1, max_overflow=1, pool_timeout=0.1
    )
    engine = db.sync_engine
    try:
        with hold(engine, 2):
            pass
        assert engine.pool.checkedout() == 0
        with hold(engine, 2), pytest.raises(sa_exc.TimeoutError, match="QueuePool limit"):
            engine.connect()
    finally:
        engine.dispose()


def test_dispose_closes_the_spares(database_url: str) -> None:
    db = Database(database_url, pool_size=1, max_overflow=2)
    engine = db.sync_engine
    pool = engine.pool
    assert isinstance(pool, KeepWarmQueuePool)
    closed = [0]

    @event.listens_for(engine, "close")
    def _on_close(*_: Any) -> None:
        closed[0] += 1

    with hold(engine, 3):
        pass
    pool.dispose()
    assert closed[0] == 3
    assert pool.spares() == 0
    assert pool.checkedin() == 0


def test_async_overflow_connections_are_reused(database_url: str) -> None:
    db = Database(database_url, pool_size=1, max_overflow=2, ping_after_idle=None)

    async def main() -> None:
        engine = db.async_engine
        assert isinstance(engine.pool, AsyncKeepWarmQueuePool)
        opened = count_connects(engine.sync_engine)
        try:
            for _ in range(3):
                async with AsyncExitStack() as stack:
                    for _ in range(3):
                        connection = await stack.enter_async_context(engine.connect())
                        await connection.exec_driver_sql("SELECT 1")
            assert opened[0] == 3
            assert engine.pool.checkedout() == 0
        finally:
            await engine.dispose()

    anyio.run(main)


def test_zero_timeout_or_own_pool_class_keeps_sqlalchemys_pool(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pools.db'}"
    plain = Database(url, overflow_idle_timeout=0).sync_engine
    no_overflow = Database(url, max_overflow=0).sync_engine
    own = Database(url, engine_options={"poolclass": NullPool}).sync_engine
    try:
        assert type(plain.pool) is QueuePool
        assert type(no_overflow.pool) is QueuePool
        assert type(own.pool) is NullPool
    finally:
        for engine in (plain, no_overflow, own):
            engine.dispose()


def test_negative_overflow_idle_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="overflow_idle_timeout"):
        Database("sqlite://", overflow_idle_timeout=-1)


def test_forked_pool_keeps_the_timeout(tmp_path: Path) -> None:
    engine = Database(f"sqlite:///{tmp_path / 'fork.db'}", overflow_idle_timeout=7.5).sync_engine
    try:
        engine.dispose(close=False)
        pool = engine.pool
        assert isinstance(pool, KeepWarmQueuePool)
        assert pool._overflow_idle_timeout == 7.5
    finally:
        engine.dispose()
