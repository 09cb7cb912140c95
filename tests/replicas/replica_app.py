"""An app that says where each of its units of work ran: ``pg_is_in_recovery()`` is true on
a replica and false on the primary."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import text

from sessionscope import AsyncDbSession, Database, DbSession, unit_of_work

IN_RECOVERY = text("SELECT pg_is_in_recovery()")
READ_NOTE = text("SELECT body FROM notes WHERE id = :id")
LOCK_NOTE = text("SELECT id FROM notes WHERE id = :id FOR UPDATE")
ADD_NOTE = text("INSERT INTO notes (body) VALUES (:body) RETURNING id")

READONLY = [unit_of_work(readonly=True)]
READONLY_ON_PRIMARY = [unit_of_work(readonly=True, primary=True)]


class NoteIn(BaseModel):
    body: str


def make_app(db: Database, flavour: str) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)
    if flavour == "sync":
        _sync_routes(app, db)
    else:
        _async_routes(app, db)
    return app


def _sync_routes(app: FastAPI, db: Database) -> None:
    @app.get("/where", dependencies=READONLY)
    def where_readonly(session: DbSession) -> bool:
        return bool(session.execute(IN_RECOVERY).scalar_one())

    @app.get("/where/plain")
    def where_plain(session: DbSession) -> bool:
        return bool(session.execute(IN_RECOVERY).scalar_one())

    @app.get("/where/primary", dependencies=READONLY_ON_PRIMARY)
    def where_primary(session: DbSession) -> bool:
        return bool(session.execute(IN_RECOVERY).scalar_one())

    @app.post("/where")
    def where_writing(session: DbSession) -> bool:
        return bool(session.execute(IN_RECOVERY).scalar_one())

    @app.get("/where/transaction")
    def where_transaction() -> bool:
        with db.transaction(readonly=True) as session:
            return bool(session.execute(IN_RECOVERY).scalar_one())

    @app.post("/notes", status_code=201)
    def add_note(note: NoteIn, session: DbSession) -> int:
        return int(session.execute(ADD_NOTE, {"body": note.body}).scalar_one())

    @app.get("/notes/{note_id}", dependencies=READONLY)
    def read_note(note_id: int, session: DbSession) -> dict[str, Any]:
        body = session.execute(READ_NOTE, {"id": note_id}).scalar_one_or_none()
        return {"body": body, "in_recovery": session.execute(IN_RECOVERY).scalar_one()}

    @app.get("/notes/{note_id}/lock", dependencies=READONLY)
    def lock_note_readonly(note_id: int, session: DbSession) -> None:
        session.execute(LOCK_NOTE, {"id": note_id})

    @app.post("/notes/{note_id}/lock")
    def lock_note(note_id: int, session: DbSession) -> bool:
        if session.execute(LOCK_NOTE, {"id": note_id}).scalar_one_or_none() is None:
            raise HTTPException(404)
        return bool(session.execute(IN_RECOVERY).scalar_one())


def _async_routes(app: FastAPI, db: Database) -> None:
    @app.get("/where", dependencies=READONLY)
    async def where_readonly(session: AsyncDbSession) -> bool:
        return bool((await session.execute(IN_RECOVERY)).scalar_one())

    @app.get("/where/plain")
    async def where_plain(session: AsyncDbSession) -> bool:
        return bool((await session.execute(IN_RECOVERY)).scalar_one())

    @app.get("/where/primary", dependencies=READONLY_ON_PRIMARY)
    async def where_primary(session: AsyncDbSession) -> bool:
        return bool((await session.execute(IN_RECOVERY)).scalar_one())

    @app.post("/where")
    async def where_writing(session: AsyncDbSession) -> bool:
        return bool((await session.execute(IN_RECOVERY)).scalar_one())

    @app.get("/where/transaction")
    async def where_transaction() -> bool:
        async with db.transaction(readonly=True) as session:
            return bool((await session.execute(IN_RECOVERY)).scalar_one())

    @app.post("/notes", status_code=201)
    async def add_note(note: NoteIn, session: AsyncDbSession) -> int:
        return int((await session.execute(ADD_NOTE, {"body": note.body})).scalar_one())

    @app.get("/notes/{note_id}", dependencies=READONLY)
    async def read_note(note_id: int, session: AsyncDbSession) -> dict[str, Any]:
        body = (await session.execute(READ_NOTE, {"id": note_id})).scalar_one_or_none()
        in_recovery = (await session.execute(IN_RECOVERY)).scalar_one()
        return {"body": body, "in_recovery": in_recovery}

    @app.get("/notes/{note_id}/lock", dependencies=READONLY)
    async def lock_note_readonly(note_id: int, session: AsyncDbSession) -> None:
        await session.execute(LOCK_NOTE, {"id": note_id})

    @app.post("/notes/{note_id}/lock")
    async def lock_note(note_id: int, session: AsyncDbSession) -> bool:
        if (await session.execute(LOCK_NOTE, {"id": note_id})).scalar_one_or_none() is None:
            raise HTTPException(404)
        return bool((await session.execute(IN_RECOVERY)).scalar_one())
