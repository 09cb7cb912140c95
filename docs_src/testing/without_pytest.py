"""sessionscope.testing without pytest: the binding and the client are context managers."""

from fastapi import FastAPI
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from sessionscope import Database, DbSession
from sessionscope.testing import app_client, rollback_after

metadata = MetaData()
notes = Table(
    "testing_plain_notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("text", String(200)),
)


def create_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/notes", status_code=201)
    def create_note(text: str, session: DbSession) -> None:
        session.execute(notes.insert().values(text=text))

    return app


def check(db: Database) -> int:
    """Write through the API inside a rolled-back transaction; return what the test saw."""
    app = create_app(db)
    # --8<-- [start:binding]
    with rollback_after(db) as bound, app_client(app) as client:
        client.post("/notes", params={"text": "hello"})
        return bound.session().scalar(select(func.count()).select_from(notes)) or 0
    # --8<-- [end:binding]
