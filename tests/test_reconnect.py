"""Contract C3: a pooled connection the server closed never fails a unit's first statement.

Real PostgreSQL and MariaDB, sync and async. Each app has one connection per flavour
(``pool_size=1, max_overflow=0``) and never pings (``ping_after_idle=None``): the next request
runs on the very connection the test killed, and only the disconnect of its first statement
tells that it is dead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Mapper, registry, relationship

from sessionscope import AsyncDbSession, Database, DbSession

pytestmark = pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)

ID_SQL = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
RERUN_MESSAGE = "running it again on a fresh connection"

metadata = MetaData()
items = Table(
    "reconnect_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
)

notes = Table(
    "reconnect_notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", ForeignKey("reconnect_items.id"), nullable=False),
    Column("text", String(50), nullable=False),
)


class Item:
    id: int
    name: str


class Note:
    id: int
    item: Item
    text: str


mapper_registry = registry()
mapper_registry.map_imperatively(Item, items)
mapper_registry.map_imperatively(Note, notes, properties={"item": relationship(Item)})

KILL_AFTER_INSERT: dict[str, Engine] = {}
"""Item names whose INSERT is followed by the kill of its connection, once."""
KILLED_IDS: list[int] = []


@event.listens_for(Item, "after_insert")
def _kill_after_insert(_mapper: Mapper[Item], connection: Connection, target: Item) -> None:
    admin = KILL_AFTER_INSERT.pop(target.name, None)
    if admin is not None:
        KILLED_IDS.append(target.id)
        kill(admin, int(connection.exec_driver_sql(ID_SQL[admin.dialect.name]).scalar_one()))


@pytest.fixture
def admin(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    yield engine
    metadata.drop_all(engine)
    engine.dispose()


def kill(admin: Engine, backend_id: int) -> None:
    """Kill one server connection of this test's own and wait until it is gone."""
    # Autocommit: PostgreSQL's pg_stat_activity is a snapshot for the whole transaction.
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if admin.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_terminate_backend(:id)"), {"id": backend_id})
            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :id")
        else:
            connection.exec_driver_sql(f"KILL CONNECTION {int(backend_id)}")
            alive = text("SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = :id")
        deadline = time.monotonic() + 10
        while connection.execute(alive, {"id": backend_id}).scalar_one():
            assert time.monotonic() < deadline, "the killed connection stayed"
            time.sleep(0.02)


def make_app(database_url: str, admin: Engine, **options: Any) -> FastAPI:
    db = Database(database_url, pool_size=1, max_overflow=0, ping_after_idle=None, **options)
    app = FastAPI(lifespan=db.lifespan)
    id_sql = text(ID_SQL[admin.dialect.name])

    @app.get("/sync/id")
    def sync_id(session: DbSession) -> int:
        return int(session.execute(id_sql).scalar_one())

    @app.get("/async/id")
    async def async_id(session: AsyncDbSession) -> int:
        return int((await session.execute(id_sql)).scalar_one())

    @app.post("/sync/items", status_code=201)
    def sync_create(name: str, session: DbSession) -> dict[str, int]:
        item = Item()
        item.name = name
        session.add(item)
        session.flush()  # the unit's first statement: the INSERT
        return {"id": item.id, "backend": int(session.execute(id_sql).scalar_one())}

    @app.post("/async/items", status_code=201)
    async def async_create(name: str, session: AsyncDbSession) -> dict[str, int]:
        item = Item()
        item.name = name
        session.add(item)
        await session.flush()
        return {"id": item.id, "backend": int((await session.execute(id_sql)).scalar_one())}

    @app.post("/sync/items-with-note", status_code=201)
    def sync_create_with_note(name: str, session: DbSession) -> dict[str, int]:
        note = Note()
        note.text = "first"
        note.item = Item()
        note.item.name = name
        session.add(note)
        session.flush()  # two INSERTs: the item's, then the note's
        return {"id": note.item.id, "backend": int(session.execute(id_sql).scalar_one())}

    @app.post("/async/items-with-note", status_code=201)
    async def async_create_with_note(name: str, session: AsyncDbSession) -> dict[str, int]:
        note = Note()
        note.text = "first"
        note.item = Item()
        note.item.name = name
        session.add(note)
        await session.flush()
        return {
            "id": note.item.id,
            "backend": int((await session.execute(id_sql)).scalar_one()),
        }

    @app.get("/sync/killed-midway")
    def sync_killed_midway(session: DbSession) -> int:
        kill(admin, int(session.execute(id_sql).scalar_one()))
        return int(session.execute(id_sql).scalar_one())

    @app.get("/async/killed-midway")
    async def async_killed_midway(session: AsyncDbSession) -> int:
        kill(admin, int((await session.execute(id_sql)).scalar_one()))
        return int((await session.execute(id_sql)).scalar_one())

    return app


def count(admin: Engine, name: str) -> int:
    with admin.connect() as connection:
        found = connection.scalar(
            select(func.count()).select_from(items).where(items.c.name == name)
        )
    return int(found or 0)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_killed_idle_connection_does_not_fail_the_next_read(
    database_url: str, admin: Engine, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(make_app(database_url, admin)) as client:
        first = client.get(f"/{flavour}/id").json()
        kill(admin, first)
        with caplog.at_level(logging.INFO, logger="sessionscope"):
            response = client.get(f"/{flavour}/id")
    assert response.status_code == 200, response.text
    assert response.json() != first
    assert RERUN_MESSAGE in caplog.text


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_killed_idle_connection_does_not_fail_the_next_insert(
    database_url: str, admin: Engine, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(make_app(database_url, admin)) as client:
        first = client.post(f"/{flavour}/items", params={"name": "warm"}).json()
        kill(admin, first["backend"])
        with caplog.at_level(logging.INFO, logger="sessionscope"):
            response = client.post(f"/{flavour}/items", params={"name": "after-kill"})
    assert response.status_code == 201, response.text
    assert response.json()["backend"] != first["backend"]
    assert RERUN_MESSAGE in caplog.text
    assert count(admin, "after-kill") == 1


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_connection_killed_between_the_statements_of_the_first_flush_runs_it_again(
    database_url: str, admin: Engine, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The first operation's first INSERT ran; its connection dies before the second. The
    # transaction is lost whole, the operation had not returned: it runs again, and the item
    # gets a key of its own, not the lost row's.
    with TestClient(make_app(database_url, admin)) as client:
        first = client.post(f"/{flavour}/items", params={"name": "warm"}).json()
        KILL_AFTER_INSERT["noted"] = admin
        KILLED_IDS.clear()
        with caplog.at_level(logging.INFO, logger="sessionscope"):
            response = client.post(f"/{flavour}/items-with-note", params={"name": "noted"})
    assert "noted" not in KILL_AFTER_INSERT  # the kill happened
    assert response.status_code == 201, response.text
    assert response.json()["backend"] != first["backend"]
    assert response.json()["id"] not in KILLED_IDS
    assert RERUN_MESSAGE in caplog.text
    assert count(admin, "noted") == 1
    with admin.connect() as connection:
        noted = connection.execute(select(notes.c.item_id)).scalars().all()
    assert noted == [response.json()["id"]]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_without_reconnect_retries_the_killed_connection_fails_the_request(
    database_url: str, admin: Engine, flavour: str
) -> None:
    with TestClient(make_app(database_url, admin, reconnect_retries=0)) as client:
        kill(admin, client.get(f"/{flavour}/id").json())
        response = client.get(f"/{flavour}/id")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert client.get(f"/{flavour}/id").status_code == 200  # the pool replaced it


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_connection_killed_after_a_statement_ran_is_not_retried(
    database_url: str, admin: Engine, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(make_app(database_url, admin)) as client:
        client.get(f"/{flavour}/id")
        with caplog.at_level(logging.INFO, logger="sessionscope"):
            response = client.get(f"/{flavour}/killed-midway")
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "1"
        assert RERUN_MESSAGE not in caplog.text
        assert client.get(f"/{flavour}/id").status_code == 200


def test_the_url_is_a_server(database_url: str) -> None:
    assert make_url(database_url).get_backend_name() in ID_SQL
