from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import AsyncDbSession, Database, DbSession


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "testing_mixed_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


class NoteIn(BaseModel):
    text: str


db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)


@app.post("/notes", status_code=201)
async def create_note(note: NoteIn, session: AsyncDbSession) -> dict[str, int]:
    row = Note(text=note.text)
    session.add(row)
    await session.flush()
    return {"id": row.id}


@app.get("/notes/{note_id}")
def read_note(note_id: int, session: DbSession) -> dict[str, str]:  # a sync route
    row = session.get(Note, note_id)
    if row is None:
        raise HTTPException(404, "no such note")
    return {"text": row.text}
