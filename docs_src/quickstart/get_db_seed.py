# The pattern most FastAPI apps start from, kept to compare. Do not copy it.
from __future__ import annotations

import os
from collections.abc import Iterator

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from .app import Note

# --8<-- [start:pattern]
engine = create_engine(  # created at import: shared by every forked worker
    os.environ.get("DATABASE_URL", "sqlite:///./sql_app.db"),
    connect_args={"check_same_thread": False},
)
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
app = FastAPI()


def get_db() -> Iterator[Session]:
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


@app.post("/notes", status_code=201)
def create_note(text: str, db: Session = Depends(get_db)) -> dict[str, str]:
    db.add(Note(text=text))
    db.commit()  # every handler commits by hand...
    if text.startswith("!"):
        raise HTTPException(400, "refused")  # ...so this 400 keeps the row it refused
    return {"text": text}
    # --8<-- [end:pattern]
