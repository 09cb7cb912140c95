"""Realistic user code, type-checked with ``mypy --strict``: the public API's types."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict
from sqlalchemy import MetaData, Table, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from typing_extensions import assert_type

from sessionscope import (
    AsyncDbSession,
    Database,
    DatabaseStats,
    DbSession,
    PoolStats,
    QueryStats,
    ReplicaStatus,
    Transaction,
    after_commit,
    delete_expired_idempotency_keys,
    idempotency_table,
    query_stats,
    unit_of_work,
)
from sessionscope.pagination import InvalidCursorError, Page, PageRequest, Paginator

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
    with db as database, db.transaction() as session:
        assert_type(database, Database)
        assert_type(session, Session)


async def worker() -> list[int]:
    async with db, db.transaction(readonly=True) as session:
        assert_type(session, AsyncSession)

    async def one(session: AsyncSession) -> int:
        return 1

    results = await db.gather(one, one)
    assert_type(results, list[int])
    return results


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    text: str


note_pages = Paginator(Note.id.desc(), max_limit=50, secret="from-the-settings")
NotesPage = Annotated[PageRequest, Depends(note_pages.params)]


@app.get("/notes")
async def list_notes(session: AsyncDbSession, page: NotesPage) -> Page[NoteOut]:
    result = await note_pages.apaginate(session, select(Note), page, into=NoteOut)
    assert_type(result, Page[NoteOut])
    assert_type(result.items, list[NoteOut])
    assert_type(result.next_cursor, str | None)
    return result


def export_notes(cursor: str | None) -> list[Note]:
    try:
        page = note_pages.request(limit=50, cursor=cursor)
    except InvalidCursorError:
        page = note_pages.request(limit=50)
    notes: list[Note] = []
    with db.transaction(readonly=True) as session:
        while True:
            result = note_pages.paginate(session, select(Note), page)
            assert_type(result, Page[Any])
            notes += result.items
            if result.next_cursor is None:
                return notes
            page = PageRequest(limit=50, cursor=result.next_cursor)


replicated = Database(
    "postgresql+asyncpg://app@db1/shop",
    replicas=["postgresql+asyncpg://app@db2/shop"],
    max_replica_lag=2.0,
    replica_reads="safe_methods",
    bookmark_cookie="db_bookmark",
)


@app.get("/fresh", dependencies=[unit_of_work(readonly=True, primary=True)])
async def fresh(session: AsyncDbSession) -> int:
    return len((await session.execute(select(1))).all())


async def replica_health() -> list[float | None]:
    async with replicated.transaction(readonly=True, primary=True) as session:
        assert_type(session, AsyncSession)
    statuses = replicated.replica_status()
    assert_type(statuses, list[ReplicaStatus])
    return [status.lag for status in statuses if status.healthy]


@app.post("/serial", dependencies=[unit_of_work(isolation="SERIALIZABLE", retries=3)])
def serial_endpoint(session: DbSession) -> None:
    unit_of_work(isolation="SNAPSHOT")  # type: ignore[arg-type]


@app.post("/orders", dependencies=[unit_of_work(idempotency=True)])
async def idempotent_endpoint(session: AsyncDbSession) -> None:
    unit_of_work(idempotency="always")  # type: ignore[arg-type]


keys: Table = idempotency_table(MetaData())
kept_a_day = Database.from_env(idempotency_ttl=86400.0)


def purge(session: Session) -> int:
    return delete_expired_idempotency_keys(session)


@db.transaction(isolation="SERIALIZABLE", retries=3, statement_timeout=2.5)
def transfer(session: Session, amount: int) -> int:
    return amount


@db.transaction(retries=3)
async def transfer_async(session: AsyncSession, amount: int) -> str:
    return str(amount)


async def retried() -> None:
    assert_type(transfer(5), int)
    assert_type(await transfer_async(5), str)
    for attempt in db.transaction(retries=2):
        with attempt as session:
            assert_type(session, Session)
    async for async_attempt in db.transaction(retries=2):
        async with async_attempt as async_session:
            assert_type(async_session, AsyncSession)


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


# The fast path: the driver connection is typed as the driver's class.
import psycopg  # noqa: E402

from sessionscope import DriverDependency, driver_connection, driver_dependency  # noqa: E402

Pg = Annotated[psycopg.AsyncConnection[Any], driver_dependency(psycopg.AsyncConnection)]


@app.get("/fast/{item_id}", dependencies=[unit_of_work(readonly=True)])
async def fast_read(item_id: int, connection: Pg) -> dict[str, Any]:
    cursor = await connection.execute("SELECT id FROM items WHERE id = %s", (item_id,))
    row = await cursor.fetchone()
    return {} if row is None else {"id": row[0]}


async def fast_mixed(session: AsyncDbSession) -> None:
    connection = await driver_connection(session, psycopg.AsyncConnection)
    assert_type(connection, psycopg.AsyncConnection[Any])


assert_type(DriverDependency(psycopg.AsyncConnection).kind, type[psycopg.AsyncConnection[Any]])
