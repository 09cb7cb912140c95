"""The core test app with ``async def`` endpoints and `AsyncDbSession`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sessionscope import AsyncDbSession, Database, after_commit, unit_of_work

from ..models import Child, Item


class Body(BaseModel):
    value: int


def build(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)
    app.state.events = []

    async def add_item(session: AsyncSession, name: str) -> Item:
        item = Item(name=name)
        session.add(item)
        await session.flush()
        return item

    @app.post("/items", status_code=201)
    async def create(name: str, session: AsyncDbSession) -> dict[str, Any]:
        item = await add_item(session, name)
        return {"id": item.id, "name": item.name}

    @app.post("/items/returned-400")
    async def returned_400(name: str, session: AsyncDbSession) -> JSONResponse:
        await add_item(session, name)
        return JSONResponse({"detail": "refused"}, status_code=400)

    @app.post("/items/raised-400")
    async def raised_400(name: str, session: AsyncDbSession) -> None:
        await add_item(session, name)
        raise HTTPException(400, "refused")

    @app.post("/items/crash")
    async def crash(name: str, session: AsyncDbSession) -> None:
        await add_item(session, name)
        raise RuntimeError("boom")

    @app.post("/items/audit", dependencies=[unit_of_work(commit="below_500")])
    async def audit(name: str, session: AsyncDbSession) -> None:
        await add_item(session, name)
        raise HTTPException(403, "refused, but recorded")

    @app.post("/items/dry-run", dependencies=[unit_of_work(commit="never")])
    async def dry_run(name: str, session: AsyncDbSession) -> dict[str, str]:
        await add_item(session, name)
        return {"status": "not saved"}

    async def writes_first(name: str, session: AsyncDbSession) -> None:
        await add_item(session, name)

    @app.post("/items/validated", dependencies=[Depends(writes_first)])
    async def validated(body: Body) -> dict[str, int]:
        return {"value": body.value}

    @app.post("/items/after-commit", status_code=201)
    async def with_after_commit(name: str, fail: bool, session: AsyncDbSession) -> None:
        await add_item(session, name)

        async def record() -> None:
            app.state.events.append(("committed", name))

        after_commit(record)
        if fail:
            raise HTTPException(400, "refused")

    @app.get("/items/count")
    async def count(session: AsyncDbSession) -> int:
        return await session.scalar(select(func.count()).select_from(Item)) or 0

    @app.post("/children")
    async def child(
        parent_id: int, session: AsyncDbSession, tasks: BackgroundTasks
    ) -> dict[str, bool]:
        session.add(Child(parent_id=parent_id))
        await session.flush()
        tasks.add_task(app.state.events.append, "background ran")
        return {"created": True}

    @app.get("/nodb")
    async def nodb() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/unused-session")
    async def unused(session: AsyncDbSession) -> dict[str, bool]:
        return {"ok": True}

    async def other_dependency(session: AsyncDbSession) -> AsyncSession:
        return session

    @app.get("/same-session")
    async def same(
        session: AsyncDbSession, other: AsyncSession = Depends(other_dependency)
    ) -> dict[str, bool]:
        return {"same": session is other}

    @app.get("/stream")
    async def stream(session: AsyncDbSession) -> StreamingResponse:
        await session.scalar(select(func.count()).select_from(Item))

        async def chunks() -> AsyncIterator[str]:
            yield f"{db.async_engine.pool.checkedout()}\n"
            try:
                await session.scalar(select(func.count()).select_from(Item))
                yield "session usable\n"
            except Exception as error:
                yield f"{type(error).__name__}\n"

        return StreamingResponse(chunks())

    @app.get("/stream-kept", dependencies=[unit_of_work(keep_for_stream=True)])
    async def stream_kept(session: AsyncDbSession) -> StreamingResponse:
        await session.scalar(select(func.count()).select_from(Item))

        async def chunks() -> AsyncIterator[str]:
            yield f"{db.async_engine.pool.checkedout()}\n"
            total = await session.scalar(select(func.count()).select_from(Item))
            yield f"count {total}\n"

        return StreamingResponse(chunks())

    @app.post("/background")
    async def background(name: str, session: AsyncDbSession, tasks: BackgroundTasks) -> None:
        await add_item(session, name)

        async def late_use() -> None:
            try:
                await session.scalar(select(func.count()).select_from(Item))
                app.state.events.append("no error")
            except Exception as error:
                app.state.events.append(error)

        tasks.add_task(late_use)

    @app.post("/background-transaction")
    async def background_transaction(
        name: str, session: AsyncDbSession, tasks: BackgroundTasks
    ) -> None:
        item = await add_item(session, name)

        async def bump() -> None:
            async with db.transaction() as own:
                row = await own.get(Item, item.id, with_for_update=True)
                assert row is not None
                row.counter += 1

        tasks.add_task(bump)

    @app.get("/readonly/count", dependencies=[unit_of_work(readonly=True)])
    async def readonly_count(session: AsyncDbSession) -> dict[str, Any]:
        total = await session.scalar(select(func.count()).select_from(Item))
        own_transaction = None
        if db.async_engine.dialect.name == "postgresql":
            # now() is the start of the transaction: it is this moment
            # only when the statement runs in a transaction of its own (autocommit).
            await session.execute(text("SELECT pg_sleep(0.05)"))
            own_transaction = await session.scalar(
                text("SELECT clock_timestamp() - now() < interval '25 milliseconds'")
            )
        return {"count": total, "statement_in_own_transaction": own_transaction}

    @app.post("/readonly/orm-write", dependencies=[unit_of_work(readonly=True)])
    async def readonly_orm_write(name: str, session: AsyncDbSession) -> None:
        await add_item(session, name)

    @app.post("/readonly/core-write", dependencies=[unit_of_work(readonly=True)])
    async def readonly_core_write(name: str, session: AsyncDbSession) -> None:
        await session.execute(insert(Item).values(name=name))

    return app
