"""An app factory: each test module of this example builds its own app."""

from fastapi import FastAPI
from sqlalchemy import select, text

from sessionscope import Database, DbSession


def make_app(label):
    db = Database.from_env()
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/label")
    def read(session: DbSession) -> str:
        return session.scalar(select(text(repr(label))))

    return app
