from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import AsyncDbSession, Database


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


class NoteIn(BaseModel):
    text: str


class NoteOut(NoteIn):
    id: int


# --8<-- [start:app]
db = Database.from_env(default_url="sqlite:///./sessionscope.db")  # unless DATABASE_URL is set


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with db.async_engine.begin() as connection:  # create the tables (or run migrations)
        await connection.run_sync(Base.metadata.create_all)
    yield


app = FastAPI(lifespan=lifespan)
db.init_app(app)  # engines created around the app's lifespan, disposed at shutdown


@app.post("/notes", status_code=201)
async def create_note(note: NoteIn, session: AsyncDbSession) -> NoteOut:
    row = Note(text=note.text)
    session.add(row)
    await session.flush()  # assigns row.id; COMMIT happens before the response is sent
    return NoteOut(id=row.id, text=row.text)


@app.get("/notes/{note_id}")
async def read_note(note_id: int, session: AsyncDbSession) -> NoteOut:
    row = await session.get(Note, note_id)
    if row is None:
        raise HTTPException(404, "no such note")
    return NoteOut(id=row.id, text=row.text)
    # --8<-- [end:app]
