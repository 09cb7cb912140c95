# The same endpoint on sessionscope: no commit in the handler, the response decides.
from __future__ import annotations

from fastapi import FastAPI, HTTPException

from sessionscope import Database, DbSession

from .app import Note

# --8<-- [start:pattern]
db = Database.from_env(default_url="sqlite:///./sessionscope.db")
app = FastAPI(lifespan=db.lifespan)


@app.post("/notes", status_code=201)
def create_note(text: str, session: DbSession) -> dict[str, str]:
    session.add(Note(text=text))
    if text.startswith("!"):
        raise HTTPException(400, "refused")  # rolled back: nothing was written
    return {"text": text}  # committed before the 201 is sent
    # --8<-- [end:pattern]
