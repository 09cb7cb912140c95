from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import text

from sessionscope import AsyncDbSession, Database, unit_of_work

# DATABASE_URL is the primary; DATABASE_REPLICA_URLS its replicas, comma-separated;
# DATABASE_MAX_REPLICA_LAG the seconds a replica may lag and still serve reads (default 5).
# --8<-- [start:app]
db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)


class NoteIn(BaseModel):
    text: str


@app.post("/notes", status_code=201)  # the primary; the response carries X-DB-Bookmark
async def create_note(note: NoteIn, session: AsyncDbSession) -> int:
    insert = text("INSERT INTO notes (body) VALUES (:body) RETURNING id")
    return int((await session.execute(insert, {"body": note.text})).scalar_one())


@app.get("/notes/{note_id}", dependencies=[unit_of_work(readonly=True)])  # a replica
async def read_note(note_id: int, session: AsyncDbSession) -> str:
    select = text("SELECT body FROM notes WHERE id = :id")
    body = (await session.execute(select, {"id": note_id})).scalar_one_or_none()
    if body is None:
        raise HTTPException(404, "no such note")
    return str(body)


@app.get("/notes/{note_id}/fresh", dependencies=[unit_of_work(readonly=True, primary=True)])
async def read_note_from_the_primary(note_id: int, session: AsyncDbSession) -> str:
    return await read_note(note_id, session)  # read-only, but always the latest commit
    # --8<-- [end:app]
