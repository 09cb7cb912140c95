"""The core test app with ``def`` endpoints and `DbSession`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from sessionscope import Database, DbSession, after_commit, unit_of_work

from ..models import Child, Item


class Body(BaseModel):
    value: int


def build(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)
    app.state.events = []

    def add_item(session: Session, name: str) -> Item:
        item = Item(name=name)
        session.add(item)
        session.flush()
        return item

    @app.post("/items", status_code=201)
    def create(name: str, session: DbSession) -> dict[str, Any]:
        item = add_item(session, name)
        return {"id": item.id, "name": item.name}

    @app.post("/items/returned-400")
    def returned_400(name: str, session: DbSession) -> JSONResponse:
        add_item(session, name)
        return JSONResponse({"detail": "refused"}, status_code=400)

    @app.post("/items/raised-400")
    def raised_400(name: str, session: DbSession) -> None:
        add_item(session, name)
        raise HTTPException(400, "refused")

    @app.post("/items/crash")
    def crash(name: str, session: DbSession) -> None:
        add_item(session, name)
        raise RuntimeError("boom")

    @app.post("/items/audit", dependencies=[unit_of_work(commit="below_500")])
    def audit(name: str, session: DbSession) -> None:
        add_item(session, name)
        raise HTTPException(403, "refused, but recorded")

    @app.post("/items/dry-run", dependencies=[unit_of_work(commit="never")])
    def dry_run(name: str, session: DbSession) -> dict[str, str]:
        add_item(session, name)
        return {"status": "not saved"}

    def writes_first(name: str, session: DbSession) -> None:
        add_item(session, name)

    @app.post("/items/validated", dependencies=[Depends(writes_first)])
    def validated(body: Body) -> dict[str, int]:
        return {"value": body.value}

    @app.post("/items/after-commit", status_code=201)
    def with_after_commit(name: str, fail: bool, session: DbSession) -> None:
        add_item(session, name)
        after_commit(lambda: app.state.events.append(("committed", name)))
        if fail:
            raise HTTPException(400, "refused")

    @app.get("/items/count")
    def count(session: DbSession) -> int:
        return session.scalar(select(func.count()).select_from(Item)) or 0

    @app.post("/children")
    def child(parent_id: int, session: DbSession, tasks: BackgroundTasks) -> dict[str, bool]:
        session.add(Child(parent_id=parent_id))
        session.flush()
        tasks.add_task(app.state.events.append, "background ran")
        return {"created": True}

    @app.get("/nodb")
    def nodb() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/unused-session")
    def unused(session: DbSession) -> dict[str, bool]:
        return {"ok": True}

    def other_dependency(session: DbSession) -> Session:
        return session

    @app.get("/same-session")
    def same(session: DbSession, other: Session = Depends(other_dependency)) -> dict[str, bool]:
        return {"same": session is other}

    @app.get("/stream")
    def stream(session: DbSession) -> StreamingResponse:
        session.scalar(select(func.count()).select_from(Item))

        def chunks() -> Iterator[str]:
            yield f"{db.sync_engine.pool.checkedout()}\n"
            try:
                session.scalar(select(func.count()).select_from(Item))
                yield "session usable\n"
            except Exception as error:
                yield f"{type(error).__name__}\n"

        return StreamingResponse(chunks())

    @app.get("/stream-kept", dependencies=[unit_of_work(keep_for_stream=True)])
    def stream_kept(session: DbSession) -> StreamingResponse:
        session.scalar(select(func.count()).select_from(Item))
        session.scalar(select(func.count()).select_from(Item))

        def chunks() -> Iterator[str]:
            yield f"{db.sync_engine.pool.checkedout()}\n"
            total = session.scalar(select(func.count()).select_from(Item))
            yield f"count {total}\n"

        return StreamingResponse(chunks())

    @app.post("/background")
    def background(name: str, session: DbSession, tasks: BackgroundTasks) -> None:
        add_item(session, name)

        def late_use() -> None:
            try:
                session.scalar(select(func.count()).select_from(Item))
                app.state.events.append("no error")
            except Exception as error:
                app.state.events.append(error)

        tasks.add_task(late_use)

    @app.post("/background-transaction")
    def background_transaction(name: str, session: DbSession, tasks: BackgroundTasks) -> None:
        item = add_item(session, name)

        def bump() -> None:
            with db.transaction() as own:
                row = own.get(Item, item.id, with_for_update=True)
                assert row is not None
                row.counter += 1

        tasks.add_task(bump)

    @app.get("/readonly/count", dependencies=[unit_of_work(readonly=True)])
    def readonly_count(session: DbSession) -> dict[str, Any]:
        total = session.scalar(select(func.count()).select_from(Item))
        own_transaction = None
        if db.sync_engine.dialect.name == "postgresql":
            # now() is the start of the transaction: it is this moment
            # only when the statement runs in a transaction of its own (autocommit).
            session.execute(text("SELECT pg_sleep(0.05)"))
            own_transaction = session.scalar(
                text("SELECT clock_timestamp() - now() < interval '25 milliseconds'")
            )
        return {"count": total, "statement_in_own_transaction": own_transaction}

    @app.post("/readonly/orm-write", dependencies=[unit_of_work(readonly=True)])
    def readonly_orm_write(name: str, session: DbSession) -> None:
        add_item(session, name)

    @app.post("/readonly/core-write", dependencies=[unit_of_work(readonly=True)])
    def readonly_core_write(name: str, session: DbSession) -> None:
        session.execute(insert(Item).values(name=name))

    return app
