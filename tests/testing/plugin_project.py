"""The files of a small user project, written out by the plugin tests with ``pytester``.

An app (sync or async flavour) over one table, a conftest that hands the app to the plugin
the documented way, and test files that write and then expect an empty table.
"""

from __future__ import annotations

import textwrap

APP = """
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import AsyncDbSession, Database, DbSession


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "{table}"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class ItemIn(BaseModel):
    name: str


def create_sync_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/items", status_code=201)
    def create(item: ItemIn, session: DbSession) -> dict[str, str]:
        session.add(Item(name=item.name))
        session.commit()
        return {{"name": item.name}}

    @app.get("/items/count")
    def count(session: DbSession) -> int:
        return session.scalar(select(func.count()).select_from(Item)) or 0

    return app


def create_async_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/items", status_code=201)
    async def create(item: ItemIn, session: AsyncDbSession) -> dict[str, str]:
        session.add(Item(name=item.name))
        await session.commit()
        return {{"name": item.name}}

    @app.get("/items/count")
    async def count(session: AsyncDbSession) -> int:
        return await session.scalar(select(func.count()).select_from(Item)) or 0

    return app
"""

CONFTEST = """
import anyio
import pytest

from app import Base, create_async_app, create_sync_app
from sessionscope import Database


async def create_tables_async(db):
    async with db.async_engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)


@pytest.fixture(scope="session")
def sessionscope_database(sessionscope_url):
    db = Database(sessionscope_url, manual_commit="allow")  # the apps commit by hand
    Base.metadata.create_all(db.sync_engine)
    if sessionscope_url in ("sqlite://", "sqlite:///:memory:"):
        # Each engine of an in-memory SQLite database is a database of its own.
        anyio.run(create_tables_async, db)
    yield db
    anyio.run(db.shutdown)


@pytest.fixture(scope="session")
def sessionscope_app(sessionscope_database):
    return create_{flavour}_app(sessionscope_database)


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

SYNC_TESTS = """
from sqlalchemy import func, select

from app import Item


def count(session):
    return session.scalar(select(func.count()).select_from(Item))


def test_writes_through_the_api(sessionscope_client, sessionscope_session):
    assert count(sessionscope_session) == 0
    assert sessionscope_client.post("/items", json={"name": "first"}).status_code == 201
    assert count(sessionscope_session) == 1
    sessionscope_session.add(Item(name="own"))
    sessionscope_session.commit()
    assert sessionscope_client.get("/items/count").json() == 2


def test_sees_an_empty_table(sessionscope_session):
    assert count(sessionscope_session) == 0


def test_writes_again(sessionscope_client):
    assert sessionscope_client.get("/items/count").json() == 0
    assert sessionscope_client.post("/items", json={"name": "first"}).status_code == 201
    assert sessionscope_client.get("/items/count").json() == 1
"""

ASYNC_TESTS = """
import pytest
from sqlalchemy import func, select

from app import Item

pytestmark = pytest.mark.anyio


async def count(session):
    return await session.scalar(select(func.count()).select_from(Item))


async def test_writes_through_the_api(sessionscope_async_client, sessionscope_async_session):
    assert await count(sessionscope_async_session) == 0
    response = await sessionscope_async_client.post("/items", json={"name": "first"})
    assert response.status_code == 201
    assert await count(sessionscope_async_session) == 1
    sessionscope_async_session.add(Item(name="own"))
    await sessionscope_async_session.commit()
    assert (await sessionscope_async_client.get("/items/count")).json() == 2


async def test_sees_an_empty_table(sessionscope_async_session):
    assert await count(sessionscope_async_session) == 0


async def test_writes_again(sessionscope_async_client):
    assert (await sessionscope_async_client.get("/items/count")).json() == 0
    response = await sessionscope_async_client.post("/items", json={"name": "first"})
    assert response.status_code == 201
    assert (await sessionscope_async_client.get("/items/count")).json() == 1
"""

# A sync test of an async app: the app's binding lives on the loop the app runs on.
SYNC_TESTS_OF_ASYNC_APP = """
def test_writes_through_the_api(sessionscope_client):
    assert sessionscope_client.get("/items/count").json() == 0
    assert sessionscope_client.post("/items", json={"name": "first"}).status_code == 201
    assert sessionscope_client.get("/items/count").json() == 1


def test_sees_an_empty_table(sessionscope_client):
    assert sessionscope_client.get("/items/count").json() == 0


def test_writes_again(sessionscope_client):
    assert sessionscope_client.get("/items/count").json() == 0
    assert sessionscope_client.post("/items", json={"name": "first"}).status_code == 201
"""

FAILING_TESTS = """
def test_fails_after_writing(sessionscope_client):
    assert sessionscope_client.post("/items", json={"name": "first"}).status_code == 201
    assert sessionscope_client.get("/items/count").json() == 1
    raise AssertionError("this test fails on purpose after its write")


def test_runs_after_the_failure(sessionscope_client):
    assert sessionscope_client.get("/items/count").json() == 0
"""

FAILING_ASYNC_TESTS = """
import pytest

pytestmark = pytest.mark.anyio


async def test_fails_after_writing(sessionscope_async_client):
    response = await sessionscope_async_client.post("/items", json={"name": "first"})
    assert response.status_code == 201
    raise AssertionError("this test fails on purpose after its write")


async def test_runs_after_the_failure(sessionscope_async_client):
    assert (await sessionscope_async_client.get("/items/count")).json() == 0
"""

# app kind -> tests that fail after writing
FAILING = {"sync-app": FAILING_TESTS, "async-app": FAILING_ASYNC_TESTS}

INI = """
[pytest]
addopts = -p no:cacheprovider
filterwarnings = error
"""

# (app flavour, test file) per kind of user project
KINDS = {
    "sync-app": ("sync", SYNC_TESTS),
    "async-app": ("async", ASYNC_TESTS),
    "async-app-sync-tests": ("async", SYNC_TESTS_OF_ASYNC_APP),
}


def files(*, table: str, flavour: str) -> dict[str, str]:
    """The project's app and conftest, for ``pytester.makepyfile``."""
    return {
        "app": textwrap.dedent(APP.format(table=table)),
        "conftest": textwrap.dedent(CONFTEST.format(flavour=flavour)),
    }
