"""What a failing database becomes for the client, through a real app (docs/errors.md).

An outage is 503 with ``Retry-After`` on every driver; a bug in the app (a missing table) is
a 500 whose traceback names the table, never a 503 that tells the client to retry.
"""

from __future__ import annotations

import socket

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import String, create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import AsyncDbSession, Database, DbSession

from .conftest import require_server


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


def _kill_connection(url: str, connection_id: int) -> None:
    """End a server connection from another one, and wait until it is gone."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as admin:
        if engine.dialect.name == "postgresql":
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({connection_id}, 10000)")
        else:
            admin.exec_driver_sql(f"KILL CONNECTION {connection_id}")
    engine.dispose()


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_a_connection_lost_before_commit_answers_503(backend: str, flavour: str) -> None:
    url = require_server(backend)
    db = Database(url)
    Base.metadata.create_all(db.sync_engine)
    own_id = "SELECT pg_backend_pid()" if backend == "postgres" else "SELECT CONNECTION_ID()"
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/sync/notes", status_code=201)
    def create_sync(session: DbSession) -> dict[str, int]:
        session.add(Note(text="lost"))
        session.flush()
        _kill_connection(url, session.execute(text(own_id)).scalar_one())
        return {}

    @app.post("/async/notes", status_code=201)
    async def create_async(session: AsyncDbSession) -> dict[str, int]:
        session.add(Note(text="lost"))
        await session.flush()
        connection_id = (await session.execute(text(own_id))).scalar_one()
        await anyio.to_thread.run_sync(_kill_connection, url, connection_id)
        return {}

    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.post(f"/{flavour}/notes")
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            # The COMMIT went to a dead connection: nobody can tell whether it landed.
            assert "outcome is unknown" in response.json()["detail"]
            assert "Idempotency-Key" in response.json()["detail"]
        with db.sync_engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(Note)) == 0
    finally:
        Base.metadata.drop_all(db.sync_engine)
        db.sync_engine.dispose()


@pytest.mark.parametrize(
    ("drivername", "flavour"),
    [("postgresql+psycopg", "sync"), ("postgresql+asyncpg", "async"), ("mysql+pymysql", "sync")],
)
def test_a_connection_refused_at_commit_is_a_known_outcome(drivername: str, flavour: str) -> None:
    # The endpoint only adds a row: the COMMIT's flush is the first to need a connection, and
    # cannot get one. Nothing was sent, so nothing landed: the ordinary busy answer.
    url = f"{drivername}://nobody@127.0.0.1:{_closed_port()}/nothing"
    db = Database(url, check_on_startup=False)
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/sync/notes", status_code=201)
    def create_sync(session: DbSession) -> dict[str, int]:
        session.add(Note(text="never sent"))
        return {}

    @app.post("/async/notes", status_code=201)
    async def create_async(session: AsyncDbSession) -> dict[str, int]:
        session.add(Note(text="never sent"))
        return {}

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(f"/{flavour}/notes")
    assert response.status_code == 503
    assert response.json() == {"detail": "The database is busy or unavailable; retry later."}
