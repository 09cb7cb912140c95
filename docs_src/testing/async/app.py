from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import AsyncDbSession, Database


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "testing_async_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


class NoteIn(BaseModel):
    text: str


# This app commits by hand, which sessionscope warns about (an error response could no longer
# roll back); the tests show that even such commits stay inside the test's transaction.
db = Database.from_env(manual_commit="allow")
app = FastAPI(lifespan=db.lifespan)


@app.post("/notes", status_code=201)
async def create_note(note: NoteIn, session: AsyncDbSession) -> dict[str, int]:
    row = Note(text=note.text)
    session.add(row)
    await session.commit()  # in tests: releases a SAVEPOINT, the test's transaction stays open
    return {"id": row.id}
