"""What a failing database becomes for the client, through a real app (docs/errors.md).

An outage is 503 with ``Retry-After`` on every driver; a bug in the app (a missing table) is
a 500 whose traceback names the table, never a 503 that tells the client to retry.
"""

from __future__ import annotations

import socket

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import String, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import AsyncDbSession, Database, DbSession


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "never_created_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


def notes_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/async/notes", status_code=201)
    async def create_async(session: AsyncDbSession) -> dict[str, int]:
        row = Note(text="hello")
        session.add(row)
        await session.flush()
        return {"id": row.id}

    @app.post("/sync/notes", status_code=201)
    def create_sync(session: DbSession) -> dict[str, int]:
        row = Note(text="hello")
        session.add(row)
        session.flush()
        return {"id": row.id}

    @app.get("/async/notes")
    async def list_async(session: AsyncDbSession) -> list[int]:
        return list(await session.scalars(select(Note.id)))

    @app.get("/sync/notes")
    def list_sync(session: DbSession) -> list[int]:
        return list(session.scalars(select(Note.id)))

    return app


@pytest.fixture
def db_without_tables(database_url: str) -> Database:
    return Database(database_url)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_missing_table_answers_500_not_503(
    db_without_tables: Database, flavour: str, method: str
) -> None:
    app = notes_app(db_without_tables)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.request(method, f"/{flavour}/notes")
    assert response.status_code == 500
    assert "retry-after" not in response.headers
    # The server's log gets the driver's message, which names the table.
    with TestClient(app) as client, pytest.raises(DBAPIError, match="never_created_notes"):
        client.request(method, f"/{flavour}/notes")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("drivername", "flavour"),
    [
        ("postgresql+asyncpg", "async"),
        ("postgresql+psycopg_async", "async"),
        ("postgresql+psycopg", "sync"),
        # postgresql+psycopg serves async sessions through asyncpg, whose connect lets
        # ConnectionRefusedError out unwrapped.
        ("postgresql+psycopg", "async"),
        ("mysql+aiomysql", "async"),
        ("mysql+pymysql", "sync"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_refused_connection_answers_503_with_retry_after(
    drivername: str, flavour: str, method: str
) -> None:
    url = f"{drivername}://nobody@127.0.0.1:{_closed_port()}/nothing"
    db = Database(url, check_on_startup=False, retry_after=3)
    with TestClient(notes_app(db), raise_server_exceptions=False) as client:
        response = client.request(method, f"/{flavour}/notes")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.json() == {"detail": "The database is busy or unavailable; retry later."}
