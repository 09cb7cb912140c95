"""The probe app the server tests run under a real uvicorn process.

Configured only by environment variables, like a deployed service: ``DATABASE_URL`` and the
``DATABASE_POOL_*`` / ``DATABASE_PING_AFTER_IDLE`` settings that `Database.from_env` reads,
``SRV_PREFIX`` (the prefix of its tables) and ``SRV_PARENT_PID`` (it exits when that process
is gone, so a crashed test run never leaves a server holding database connections).

Every behaviour has a ``/sync/...`` (``def``, `DbSession`) and an ``/async/...`` (``async def``,
`AsyncDbSession`) endpoint. ``/debug/...`` endpoints report what the tests cannot see from
outside: checked-out connections, the app's database backend ids, background task outcomes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from fastapi import BackgroundTasks, FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import Engine, event, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, registry
from sqlalchemy.pool import ConnectionPoolEntry
from srv_schema import make_metadata
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionscope import (
    AsyncDbSession,
    Database,
    DbSession,
    SessionScopeError,
    unit_of_work,
)

PREFIX = os.environ["SRV_PREFIX"]
BACKEND = make_url(os.environ["DATABASE_URL"]).get_backend_name()
CORS_ORIGIN = "http://client.example"

tables = make_metadata(PREFIX, BACKEND).tables


class Item:
    id: int
    name: str
    touched: int


class Child:
    id: int
    name: str
    parent_id: int


class Code:
    id: int
    code: str
    name: str


class Counter:
    id: int
    value: int


mapper_registry = registry()
for model, table in ((Item, "items"), (Child, "children"), (Code, "codes"), (Counter, "counters")):
    mapper_registry.map_imperatively(model, tables[PREFIX + table])

# -- what the tests read through /debug -------------------------------------------------------

backend_ids: set[int] = set()
flushed_names: list[str] = []
background_outcomes: dict[str, dict[str, Any]] = {}

_BACKEND_ID_SQL = {
    "postgresql": f"SELECT pg_backend_pid(), set_config('application_name', '{PREFIX}app', false)",
    "mysql": "SELECT CONNECTION_ID()",
}.get(BACKEND)


@event.listens_for(Engine, "connect")
def _remember_backend_id(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    """Record each new connection's server-side id (pid / thread id), so the tests can find
    this app's connections in pg_stat_activity or the process list, and kill them."""
    if _BACKEND_ID_SQL is None:
        return
    cursor = dbapi_connection.cursor()
    cursor.execute(_BACKEND_ID_SQL)
    backend_ids.add(int(cursor.fetchone()[0]))
    cursor.close()
    dbapi_connection.commit()


def _exit_with_parent() -> None:
    parent = int(os.environ.get("SRV_PARENT_PID", "0"))
    while parent:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


threading.Thread(target=_exit_with_parent, daemon=True).start()


class DeadlineMiddleware:
    """Cancel a request that carries ``x-deadline-ms`` when its deadline passes and answer 504,
    as timeout middlewares do: the cancellation lands wherever the request is awaiting,
    inside a query or inside the end of its unit of work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        deadline_ms = headers.get(b"x-deadline-ms")
        if deadline_ms is None:
            await self.app(scope, receive, send)
            return
        response_started = False

        async def watch_start(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        with anyio.move_on_after(int(deadline_ms) / 1000) as deadline:
            await self.app(scope, receive, watch_start)
        if deadline.cancelled_caught and not response_started:
            await JSONResponse({"detail": "deadline exceeded"}, 504)(scope, receive, send)


db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)
app.add_middleware(DeadlineMiddleware)
app.add_middleware(
    CORSMiddleware, allow_origins=[CORS_ORIGIN], allow_methods=["*"], allow_headers=["*"]
)

_HOLD_SQL = {"postgresql": "SELECT pg_sleep(:seconds)", "mysql": "SELECT SLEEP(:seconds)"}.get(
    BACKEND
)


def hold_sync(session: Session, seconds: float) -> None:
    """Keep the connection busy inside a transaction for ``seconds``: a sleep query where the
    database has one, otherwise a query then a sleep with the transaction open."""
    if _HOLD_SQL is not None:
        session.execute(text(_HOLD_SQL), {"seconds": seconds})
    else:
        session.execute(text("SELECT 1"))
        time.sleep(seconds)


async def hold_async(session: Any, seconds: float) -> None:
    if _HOLD_SQL is not None:
        await session.execute(text(_HOLD_SQL), {"seconds": seconds})
    else:
        await session.execute(text("SELECT 1"))
        await anyio.sleep(seconds)


class ItemIn(BaseModel):
    name: str


class ItemOut(BaseModel):
    id: int
    name: str
    touched: int = 0


class ChildIn(BaseModel):
    name: str
    parent_id: int


class CodeIn(BaseModel):
    code: str
    name: str


class HoldOut(BaseModel):
    held_ms: int


class CounterOut(BaseModel):
    id: int
    value: int


def _item_out(item: Item) -> ItemOut:
    return ItemOut(id=item.id, name=item.name, touched=item.touched or 0)


def _outcome(error: BaseException | None) -> dict[str, Any]:
    if error is None:
        return {"ok": True}
    return {
        "ok": False,
        "error": type(error).__name__,
        "scope_error": isinstance(error, SessionScopeError),
        "message": str(error),
    }


# -- health and debug -----------------------------------------------------------------------


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@app.get("/debug/pool")
async def debug_pool() -> dict[str, Any]:
    return {
        "sync": db.sync_engine.pool.checkedout(),  # type: ignore[attr-defined]
        "async": db.async_engine.pool.checkedout(),  # type: ignore[attr-defined]
        "backend_ids": sorted(backend_ids),
    }


@app.get("/debug/stats")
async def debug_stats() -> dict[str, Any]:
    """`Database.stats` of this app, as JSON."""
    stats = db.stats()
    return {
        "pools": {flavour: vars(pool) for flavour, pool in stats.pools.items()},
        "commits": stats.commits,
        "rollbacks": stats.rollbacks,
    }


if db.config.prometheus:
    from prometheus_client import make_asgi_app

    app.mount("/metrics", make_asgi_app())


@app.get("/debug/flushed")
async def debug_flushed() -> list[str]:
    return flushed_names


@app.get("/debug/background/{token}")
async def debug_background(token: str) -> dict[str, Any]:
    outcome = background_outcomes.get(token)
    if outcome is None:
        raise HTTPException(404, "not finished")
    return outcome


# -- sync endpoints -------------------------------------------------------------------------


@app.post("/sync/items", status_code=201)
def sync_create_item(body: ItemIn, session: DbSession) -> ItemOut:
    item = Item()
    item.name = body.name
    session.add(item)
    session.flush()
    return _item_out(item)


@app.post("/sync/items/slow", status_code=201)
def sync_create_item_slowly(body: ItemIn, session: DbSession, ms: int = 1000) -> ItemOut:
    """Insert, then take ``ms`` before answering: a client may give up meanwhile."""
    item = Item()
    item.name = body.name
    session.add(item)
    session.flush()
    time.sleep(ms / 1000)
    return _item_out(item)


@app.get("/sync/items/{item_id}")
def sync_read_item(item_id: int, session: DbSession) -> ItemOut:
    item = session.get(Item, item_id)
    if item is None:
        raise HTTPException(404, "no such item")
    return _item_out(item)


@app.post("/sync/items/refused")
def sync_refuse_item(body: ItemIn, session: DbSession, raise_it: bool = False) -> Any:
    item = Item()
    item.name = body.name
    session.add(item)
    session.flush()
    if raise_it:
        raise HTTPException(400, "refused")
    return JSONResponse({"detail": "refused"}, status_code=400)


@app.post("/sync/children", status_code=201)
def sync_create_child(body: ChildIn, session: DbSession) -> dict[str, str]:
    child = Child()
    child.name, child.parent_id = body.name, body.parent_id
    session.add(child)
    session.flush()
    flushed_names.append(body.name)
    return {"name": body.name}


@app.post("/sync/codes", status_code=201)
def sync_create_code(body: CodeIn, session: DbSession) -> dict[str, str]:
    code = Code()
    code.code, code.name = body.code, body.name
    session.add(code)
    session.flush()
    flushed_names.append(body.name)
    return {"name": body.name}


@app.get("/sync/rows/{table}")
def sync_count_rows(table: str, name: str, session: DbSession) -> int:
    target = tables[PREFIX + table]
    return (
        session.scalar(select(func.count()).select_from(target).where(target.c.name == name)) or 0
    )


@app.get("/sync/hold")
def sync_hold(session: DbSession, ms: int = 50) -> HoldOut:
    hold_sync(session, ms / 1000)
    return HoldOut(held_ms=ms)


@app.get("/sync/hold-model", response_model=HoldOut)
def sync_hold_model(session: DbSession, ms: int = 50):  # type: ignore[no-untyped-def]
    hold_sync(session, ms / 1000)
    return {"held_ms": ms}


@app.get("/sync/stream")
def sync_stream(session: DbSession, chunks: int = 5) -> StreamingResponse:
    count = session.scalar(select(func.count()).select_from(Item))

    def body() -> Iterator[bytes]:
        for index in range(chunks):
            time.sleep(0.002)
            yield f"{index}:{count}\n".encode()

    return StreamingResponse(body(), media_type="text/plain")


@app.get("/sync/stream-kept", dependencies=[unit_of_work(keep_for_stream=True)])
def sync_stream_kept(session: DbSession, chunks: int = 5) -> StreamingResponse:
    def body() -> Iterator[bytes]:
        for index in range(chunks):
            count = session.scalar(select(func.count()).select_from(Item))
            time.sleep(0.002)
            yield f"{index}:{count}\n".encode()

    return StreamingResponse(body(), media_type="text/plain")


@app.post("/sync/background/session/{token}", status_code=201)
def sync_background_session(token: str, session: DbSession, tasks: BackgroundTasks) -> ItemOut:
    item = Item()
    item.name = token
    session.add(item)
    session.flush()

    def touch_request_session() -> None:
        error: BaseException | None = None
        try:
            session.execute(select(Item).where(Item.name == token)).all()
        except Exception as caught:
            error = caught
        background_outcomes[token] = _outcome(error)

    tasks.add_task(touch_request_session)
    return _item_out(item)


@app.post("/sync/background/transaction/{token}", status_code=201)
def sync_background_transaction(token: str, session: DbSession, tasks: BackgroundTasks) -> ItemOut:
    item = Item()
    item.name = token
    session.add(item)
    session.flush()
    item_id = item.id

    def lock_and_update_row() -> None:
        error: BaseException | None = None
        try:
            with db.transaction() as own:
                _bound_lock_wait_sync(own)
                own.execute(select(Item.id).where(Item.id == item_id).with_for_update()).one()
                own.execute(update(Item).where(Item.id == item_id).values(touched=1))
        except Exception as caught:
            error = caught
        background_outcomes[token] = _outcome(error)

    tasks.add_task(lock_and_update_row)
    return _item_out(item)


_LOCK_WAIT_SQL = {
    # A self-deadlock would hang forever; bounded, it becomes a recorded failure.
    "postgresql": "SET LOCAL lock_timeout = '5s'",
    "mysql": "SET SESSION innodb_lock_wait_timeout = 5",
}.get(BACKEND)


def _bound_lock_wait_sync(session: Session) -> None:
    if _LOCK_WAIT_SQL is not None:
        session.execute(text(_LOCK_WAIT_SQL))


@app.post("/sync/counters", status_code=201)
def sync_create_counter(session: DbSession) -> CounterOut:
    counter = Counter()
    counter.value = 0
    session.add(counter)
    session.flush()
    return CounterOut(id=counter.id, value=counter.value)


@app.get("/sync/counters/{counter_id}")
def sync_read_counter(counter_id: int, session: DbSession) -> CounterOut:
    counter = session.get_one(Counter, counter_id)
    return CounterOut(id=counter.id, value=counter.value)


@app.post("/sync/counters/{counter_id}/increment")
def sync_increment(counter_id: int, session: DbSession) -> CounterOut:
    value = session.scalar(select(Counter.value).where(Counter.id == counter_id))
    assert value is not None
    time.sleep(0.001)  # widen the read-modify-write window: lost updates show at once
    session.execute(update(Counter).where(Counter.id == counter_id).values(value=value + 1))
    return CounterOut(id=counter_id, value=value + 1)


class IncrementIn(BaseModel):
    by: int = 1


# D2: read-modify-write under SERIALIZABLE; the body makes "the same parsed inputs" visible.
SERIAL_RETRIED = [unit_of_work(isolation="SERIALIZABLE", retries=200)]
SERIAL_ONCE = [unit_of_work(isolation="SERIALIZABLE")]


def _serial_increment_sync(counter_id: int, body: IncrementIn, session: Session) -> CounterOut:
    value = session.scalar(select(Counter.value).where(Counter.id == counter_id))
    assert value is not None
    time.sleep(0.001)
    session.execute(update(Counter).where(Counter.id == counter_id).values(value=value + body.by))
    return CounterOut(id=counter_id, value=value + body.by)


@app.post("/sync/counters/{counter_id}/serial-increment", dependencies=SERIAL_RETRIED)
def sync_serial_increment(counter_id: int, body: IncrementIn, session: DbSession) -> CounterOut:
    return _serial_increment_sync(counter_id, body, session)


@app.post("/sync/counters/{counter_id}/serial-increment-once", dependencies=SERIAL_ONCE)
def sync_serial_increment_once(
    counter_id: int, body: IncrementIn, session: DbSession
) -> CounterOut:
    return _serial_increment_sync(counter_id, body, session)


# -- async endpoints ------------------------------------------------------------------------


@app.post("/async/items", status_code=201)
async def async_create_item(body: ItemIn, session: AsyncDbSession) -> ItemOut:
    item = Item()
    item.name = body.name
    session.add(item)
    await session.flush()
    return _item_out(item)


@app.post("/async/items/slow", status_code=201)
async def async_create_item_slowly(
    body: ItemIn, session: AsyncDbSession, ms: int = 1000
) -> ItemOut:
    item = Item()
    item.name = body.name
    session.add(item)
    await session.flush()
    await anyio.sleep(ms / 1000)
    return _item_out(item)


@app.get("/async/items/{item_id}")
async def async_read_item(item_id: int, session: AsyncDbSession) -> ItemOut:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(404, "no such item")
    return _item_out(item)


@app.post("/async/items/refused")
async def async_refuse_item(body: ItemIn, session: AsyncDbSession, raise_it: bool = False) -> Any:
    item = Item()
    item.name = body.name
    session.add(item)
    await session.flush()
    if raise_it:
        raise HTTPException(400, "refused")
    return JSONResponse({"detail": "refused"}, status_code=400)


@app.post("/async/children", status_code=201)
async def async_create_child(body: ChildIn, session: AsyncDbSession) -> dict[str, str]:
    child = Child()
    child.name, child.parent_id = body.name, body.parent_id
    session.add(child)
    await session.flush()
    flushed_names.append(body.name)
    return {"name": body.name}


@app.post("/async/codes", status_code=201)
async def async_create_code(body: CodeIn, session: AsyncDbSession) -> dict[str, str]:
    code = Code()
    code.code, code.name = body.code, body.name
    session.add(code)
    await session.flush()
    flushed_names.append(body.name)
    return {"name": body.name}


@app.get("/async/rows/{table}")
async def async_count_rows(table: str, name: str, session: AsyncDbSession) -> int:
    target = tables[PREFIX + table]
    count = await session.scalar(
        select(func.count()).select_from(target).where(target.c.name == name)
    )
    return count or 0


@app.get("/async/hold")
async def async_hold(session: AsyncDbSession, ms: int = 50) -> HoldOut:
    await hold_async(session, ms / 1000)
    return HoldOut(held_ms=ms)


@app.get("/async/stream")
async def async_stream(session: AsyncDbSession, chunks: int = 5) -> StreamingResponse:
    count = await session.scalar(select(func.count()).select_from(Item))

    async def body() -> AsyncIterator[bytes]:
        for index in range(chunks):
            await anyio.sleep(0.002)
            yield f"{index}:{count}\n".encode()

    return StreamingResponse(body(), media_type="text/plain")


@app.get("/async/stream-kept", dependencies=[unit_of_work(keep_for_stream=True)])
async def async_stream_kept(session: AsyncDbSession, chunks: int = 5) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for index in range(chunks):
            count = await session.scalar(select(func.count()).select_from(Item))
            await anyio.sleep(0.002)
            yield f"{index}:{count}\n".encode()

    return StreamingResponse(body(), media_type="text/plain")


@app.post("/async/background/session/{token}", status_code=201)
async def async_background_session(
    token: str, session: AsyncDbSession, tasks: BackgroundTasks
) -> ItemOut:
    item = Item()
    item.name = token
    session.add(item)
    await session.flush()

    async def touch_request_session() -> None:
        error: BaseException | None = None
        try:
            (await session.execute(select(Item).where(Item.name == token))).all()
        except Exception as caught:
            error = caught
        background_outcomes[token] = _outcome(error)

    tasks.add_task(touch_request_session)
    return _item_out(item)


@app.post("/async/background/transaction/{token}", status_code=201)
async def async_background_transaction(
    token: str, session: AsyncDbSession, tasks: BackgroundTasks
) -> ItemOut:
    item = Item()
    item.name = token
    session.add(item)
    await session.flush()
    item_id = item.id

    async def lock_and_update_row() -> None:
        error: BaseException | None = None
        try:
            async with db.transaction() as own:
                if _LOCK_WAIT_SQL is not None:
                    await own.execute(text(_LOCK_WAIT_SQL))
                (
                    await own.execute(select(Item.id).where(Item.id == item_id).with_for_update())
                ).one()
                await own.execute(update(Item).where(Item.id == item_id).values(touched=1))
        except Exception as caught:
            error = caught
        background_outcomes[token] = _outcome(error)

    tasks.add_task(lock_and_update_row)
    return _item_out(item)


@app.post("/async/counters", status_code=201)
async def async_create_counter(session: AsyncDbSession) -> CounterOut:
    counter = Counter()
    counter.value = 0
    session.add(counter)
    await session.flush()
    return CounterOut(id=counter.id, value=counter.value)


@app.get("/async/counters/{counter_id}")
async def async_read_counter(counter_id: int, session: AsyncDbSession) -> CounterOut:
    counter = await session.get_one(Counter, counter_id)
    return CounterOut(id=counter.id, value=counter.value)


async def _serial_increment_async(
    counter_id: int, body: IncrementIn, session: AsyncDbSession
) -> CounterOut:
    value = await session.scalar(select(Counter.value).where(Counter.id == counter_id))
    assert value is not None
    await anyio.sleep(0.001)
    await session.execute(
        update(Counter).where(Counter.id == counter_id).values(value=value + body.by)
    )
    return CounterOut(id=counter_id, value=value + body.by)


@app.post("/async/counters/{counter_id}/serial-increment", dependencies=SERIAL_RETRIED)
async def async_serial_increment(
    counter_id: int, body: IncrementIn, session: AsyncDbSession
) -> CounterOut:
    return await _serial_increment_async(counter_id, body, session)


@app.post("/async/counters/{counter_id}/serial-increment-once", dependencies=SERIAL_ONCE)
async def async_serial_increment_once(
    counter_id: int, body: IncrementIn, session: AsyncDbSession
) -> CounterOut:
    return await _serial_increment_async(counter_id, body, session)


@app.post("/async/counters/{counter_id}/increment")
async def async_increment(counter_id: int, session: AsyncDbSession) -> CounterOut:
    value = await session.scalar(select(Counter.value).where(Counter.id == counter_id))
    assert value is not None
    await anyio.sleep(0.001)  # widen the read-modify-write window: lost updates show at once
    await session.execute(update(Counter).where(Counter.id == counter_id).values(value=value + 1))
    return CounterOut(id=counter_id, value=value + 1)
