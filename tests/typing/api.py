"""Realistic user code, type-checked with ``mypy --strict``: the public API's types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from typing_extensions import assert_type

from sessionscope import (
    AsyncDbSession,
    Database,
    DatabaseStats,
    DbSession,
    PoolStats,
    QueryStats,
    Transaction,
    after_commit,
    query_stats,
    unit_of_work,
)

db = Database.from_env()
reports = Database("postgresql+asyncpg://reports@127.0.0.1/reports", name="reports", pool_size=2)
tuned = Database.from_env(pool_timeout=2.0, commit_policy="below_500", ping_after_idle=None)
observed = Database.from_env(server_timing=True, query_budget=20, slow_query_threshold=0.25)


def misconfigured() -> None:
    # Options are typed: a misspelt name or a wrong type fails type checking (mypy --strict
    # reports an unused ignore if it does not).
    Database("sqlite://", pool_sise=3)  # type: ignore[call-arg]
    Database("sqlite://", pool_size="3")  # type: ignore[arg-type]


ReportsSession = Annotated[AsyncSession, Depends(reports.get_async_session)]
app = FastAPI(lifespan=db.lifespan)
reports.init_app(app)


@app.get("/sync")
def sync_endpoint(session: DbSession) -> int:
    assert_type(session, Session)
    return len(session.execute(select(1)).all())


@app.post("/async", dependencies=[unit_of_work(commit="below_500")])
async def async_endpoint(session: AsyncDbSession, other: ReportsSession) -> int:
    assert_type(session, AsyncSession)
    assert_type(other, AsyncSession)
    after_commit(lambda: None)
    return len((await session.execute(select(1))).all())


def script() -> None:
    assert_type(db.transaction(), Transaction)
    with db.transaction() as session:
        assert_type(session, Session)


async def worker() -> list[int]:
    async with db.transaction(readonly=True) as session:
        assert_type(session, AsyncSession)

    async def one(session: AsyncSession) -> int:
        return 1

    results = await db.gather(one, one)
    assert_type(results, list[int])
    return results


def health() -> dict[str, int]:
    stats = db.stats()
    assert_type(stats, DatabaseStats)
    pool = stats.pools["async"]
    assert_type(pool, PoolStats)
    route = stats.route("GET", "/items/{item_id}")
    held = route.hold.sum if route is not None else 0.0
    assert_type(held, float)
    return {"checked_out": pool.checked_out, "waiters": pool.waiters}


def accounting() -> int:
    found = query_stats()
    assert_type(found, QueryStats | None)
    return found.statements if found is not None else 0


budgeted = unit_of_work(query_budget=200)
