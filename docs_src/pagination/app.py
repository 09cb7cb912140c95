from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import AsyncDbSession, Database
from sessionscope.pagination import Page, PageRequest, Paginator


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    author: Mapped[str] = mapped_column(String(50))
    text: Mapped[str] = mapped_column(String(200))


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    author: str
    text: str


db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)

newest_first = Paginator(Note.id.desc(), max_limit=50)  # the primary key: a unique order
NotesPage = Annotated[PageRequest, Depends(newest_first.params)]  # ?limit=&offset=&cursor=


@app.get("/notes")
async def list_notes(
    session: AsyncDbSession, page: NotesPage, author: str | None = None
) -> Page[NoteOut]:
    query = select(Note)
    if author is not None:
        query = query.where(Note.author == author)
    return await newest_first.apaginate(session, query, page, into=NoteOut)
