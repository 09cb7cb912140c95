"""The fast path (statements on the unit of work's driver connection) keeps the contract's
request guarantees, on PostgreSQL with asyncpg and with psycopg."""

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionscope import (
    AsyncDbSession,
    ConfigurationError,
    Database,
    DriverConnection,
    SessionClosedError,
    driver_connection,
    driver_dependency,
    unit_of_work,
)

from .conftest import require_server

pytestmark = pytest.mark.postgres

TABLE = "fastpath_items"


@pytest.fixture(params=["asyncpg", "psycopg"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sync_url() -> Iterator[str]:
    url = require_server("postgres")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        connection.exec_driver_sql(
            f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, name text UNIQUE)"
        )
    engine.dispose()
    yield url
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
    engine.dispose()


def names(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT name FROM {TABLE} ORDER BY name"))
            return [row[0] for row in rows]
    finally:
        engine.dispose()


class SeenAtResponseStart:
    """ASGI middleware: the rows another connection sees when the response starts."""

    def __init__(self, app: ASGIApp, url: str) -> None:
        self.app = app
        self.url = url
        self.seen: list[list[str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watching(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append(names(self.url))
            await send(message)

        await self.app(scope, receive, watching)


def build(url: str, driver: str) -> tuple[FastAPI, Database, dict[str, Any]]:
    async_url = make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(False)
    db = Database(url, async_url=async_url, pool_size=2, max_overflow=0, pool_timeout=2.0)
    kind: type[Any]
    if driver == "asyncpg":
        import asyncpg

        kind = asyncpg.Connection
    else:
        import psycopg

        kind = psycopg.AsyncConnection
    Connection = Annotated[Any, driver_dependency(kind)]
    kept: dict[str, Any] = {}
    app = FastAPI()
    db.init_app(app)

    async def insert(connection: Any, name: str) -> None:
        if driver == "asyncpg":
            await connection.execute(f"INSERT INTO {TABLE} (name) VALUES ($1)", name)
        else:
            await connection.execute(f"INSERT INTO {TABLE} (name) VALUES (%s)", (name,))

    async def count(connection: Any) -> int:
        if driver == "asyncpg":
            return int(await connection.fetchval(f"SELECT count(*) FROM {TABLE}"))
        cursor = await connection.execute(f"SELECT count(*) FROM {TABLE}")
        row = await cursor.fetchone()
        return int(row[0])

    @app.post("/items/{name}")
    async def create(name: str, connection: Connection) -> dict[str, str]:
        await insert(connection, name)
        kept["connection"] = connection
        return {"name": name}

    @app.post("/fail/{name}")
    async def fail(name: str, connection: Connection) -> None:
        await insert(connection, name)
        raise RuntimeError("boom")

    @app.post("/reject/{name}")
    async def reject(name: str, connection: Connection) -> None:
        await insert(connection, name)
        raise HTTPException(status_code=400, detail="rejected")

    @app.post("/later/{name}")
    async def later(name: str, connection: Connection, tasks: BackgroundTasks) -> None:
        async def use_after_response() -> None:
            try:
                await insert(connection, name + "-late")
            except SessionClosedError as error:
                kept["late"] = error

        tasks.add_task(use_after_response)

    @app.get("/count", dependencies=[unit_of_work(readonly=True)])
    async def read(connection: Connection) -> dict[str, int]:
        return {"count": await count(connection)}

    @app.get("/slow", dependencies=[unit_of_work(statement_timeout=0.05)])
    async def slow(connection: Connection) -> None:
        await connection.execute("SELECT pg_sleep(2)")

    @app.post("/mixed/{name}")
    async def mixed(name: str, session: AsyncDbSession, fail: bool = False) -> dict[str, int]:
        await session.execute(text(f"INSERT INTO {TABLE} (name) VALUES (:n)"), {"n": name})
        connection = await driver_connection(session, kind)
        seen = await count(connection)
        if fail:
            raise HTTPException(status_code=422, detail="rolled back")
        return {"count": seen}

    @app.get("/wrong-kind")
    async def wrong(connection: Annotated[Any, driver_dependency(dict)]) -> None:
        return None

    @app.get("/session-after-driver")
    async def session_after(connection: Connection, session: AsyncDbSession) -> None:
        return None

    return app, db, kept


@pytest.fixture
def served(
    sync_url: str, driver: str
) -> Iterator[tuple[TestClient, Database, dict[str, Any], SeenAtResponseStart]]:
    app, db, kept = build(sync_url, driver)
    watcher = SeenAtResponseStart(app, sync_url)
    with TestClient(watcher, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        # TestClient runs the lifespan of the app it is given; the watcher forwards it.
        yield client, db, kept, watcher


def test_commit_before_the_response_starts(served: Any, sync_url: str) -> None:
    client, db, _, watcher = served
    response = client.post("/items/a")
    assert response.status_code == 200
    assert watcher.seen[-1] == ["a"]
    assert db.stats().pools["async"].checked_out == 0


def test_error_and_client_error_roll_back(served: Any, sync_url: str) -> None:
    client, _, _, _ = served
    assert client.post("/fail/b").status_code == 500
    assert client.post("/reject/c").status_code == 400
    assert names(sync_url) == []


def test_driver_connection_is_refused_after_the_end(served: Any, sync_url: str) -> None:
    client, _, kept, _ = served
    assert client.post("/items/d").status_code == 200
    assert isinstance(kept["connection"], DriverConnection)
    with pytest.raises(SessionClosedError):
        _ = kept["connection"].execute
    assert client.post("/later/e").status_code == 200
    assert isinstance(kept["late"], SessionClosedError)
    assert names(sync_url) == ["d"]


def test_errors_map_to_409_and_503(served: Any) -> None:
    client, _, _, _ = served
    assert client.post("/items/f").status_code == 200
    conflict = client.post("/items/f")
    assert conflict.status_code == 409
    timeout = client.get("/slow")
    assert timeout.status_code == 503
    assert "retry-after" in timeout.headers


def test_readonly_route_reads_without_a_transaction(served: Any) -> None:
    client, _, _, _ = served
    client.post("/items/g")
    assert client.get("/count").json() == {"count": 1}


def test_session_and_driver_share_one_transaction(served: Any, sync_url: str) -> None:
    client, _, _, _ = served
    assert client.post("/mixed/h").json() == {"count": 1}
    assert client.post("/mixed/i", params={"fail": True}).status_code == 422
    assert names(sync_url) == ["h"]


def test_wrong_driver_class_and_session_after_driver_are_refused(served: Any) -> None:
    client, _, _, _ = served
    with pytest.raises(ConfigurationError):
        TestClient(client.app).__enter__().get("/wrong-kind")
    assert client.get("/session-after-driver").status_code == 500


def test_pool_slot_is_held_and_given_back(served: Any) -> None:
    client, db, _, _ = served
    for index in range(5):
        assert client.post(f"/items/slot{index}").status_code == 200
    assert db.stats().pools["async"].checked_out == 0
