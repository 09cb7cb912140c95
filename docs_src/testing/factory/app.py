from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import Database, DbSession


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "testing_factory_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


class NoteIn(BaseModel):
    text: str


def get_signature() -> str:
    """Another dependency of the app, one that tests replace."""
    return "-- sent from production"


def create_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/notes", status_code=201)
    def create_note(
        note: NoteIn, session: DbSession, signature: Annotated[str, Depends(get_signature)]
    ) -> dict[str, str]:
        session.add(Note(text=f"{note.text} {signature}"))
        return {"text": f"{note.text} {signature}"}

    return app
