"""The pytest plugin's N+1 mode (contract G1): a test whose request exceeds its query budget
fails, through the ``sessionscope_query_budget`` fixture or the
``--sessionscope-fail-on-query-budget`` option; the same endpoint with ``selectinload`` passes.
Run with ``pytester`` in-process on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import inprocess  # noqa: F401
import pytest
from sqlalchemy import create_engine, text

pytest_plugins = ["pytester"]

APP = """
from fastapi import FastAPI
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from sessionscope import Database, DbSession


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "{prefix}parents"
    id: Mapped[int] = mapped_column(primary_key=True)
    children: Mapped[list["Child"]] = relationship()


class Child(Base):
    __tablename__ = "{prefix}children"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("{prefix}parents.id"))


def create_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/lazy")
    def lazy(session: DbSession) -> list[int]:
        return [len(p.children) for p in session.scalars(select(Parent).order_by(Parent.id))]

    @app.get("/fixed")
    def fixed(session: DbSession) -> list[int]:
        query = select(Parent).options(selectinload(Parent.children)).order_by(Parent.id)
        return [len(p.children) for p in session.scalars(query)]

    return app
"""

CONFTEST = """
import pytest
from sqlalchemy import create_engine

from app import Base, create_app
from sessionscope import Database


@pytest.fixture(scope="session")
def sessionscope_database(sessionscope_url):
    engine = create_engine(sessionscope_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    db = Database(sessionscope_url, query_budget=4)
    yield db
    db.close()


@pytest.fixture(scope="session")
def sessionscope_app(sessionscope_database):
    return create_app(sessionscope_database)


@pytest.fixture
def parents(sessionscope_session):
    from app import Child, Parent

    for _ in range(5):
        sessionscope_session.add(Parent(children=[Child(), Child()]))
    sessionscope_session.flush()
"""

TESTS = """
import pytest


@pytest.mark.usefixtures("parents")
def test_fixed(sessionscope_client, sessionscope_query_budget):
    assert sessionscope_client.get("/fixed").json() == [2] * 5


@pytest.mark.usefixtures("parents")
def test_lazy_watched(sessionscope_client, sessionscope_query_budget):
    assert sessionscope_client.get("/lazy").json() == [2] * 5


@pytest.mark.usefixtures("parents")
def test_lazy_unwatched(sessionscope_client):
    assert sessionscope_client.get("/lazy").json() == [2] * 5
"""


@pytest.fixture
def prefix(database_url: str) -> Iterator[str]:
    name = f"tst_budget_{uuid.uuid4().hex[:8]}_"
    yield name
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            for table in ("children", "parents"):
                connection.execute(text(f"DROP TABLE IF EXISTS {name}{table}"))
    finally:
        engine.dispose()


def write_project(pytester: pytest.Pytester, prefix: str) -> None:
    pytester.makepyfile(app=APP.format(prefix=prefix), conftest=CONFTEST, test_budget=TESTS)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")


def test_the_fixture_fails_the_n_plus_one_test_only(
    pytester: pytest.Pytester, database_url: str, prefix: str
) -> None:
    write_project(pytester, prefix)
    result = pytester.runpytest_inprocess("--sessionscope-url", database_url, "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_lazy_watched*",
            "*QueryBudgetExceededError: query budget exceeded on GET /lazy: * statements "
            "(budget 4); sent 5 times: SELECT *children*",
        ]
    )


def test_the_option_fails_every_n_plus_one_test(
    pytester: pytest.Pytester, database_url: str, prefix: str
) -> None:
    write_project(pytester, prefix)
    result = pytester.runpytest_inprocess(
        "--sessionscope-url",
        database_url,
        "-p",
        "no:randomly",
        "--sessionscope-fail-on-query-budget",
    )
    result.assert_outcomes(passed=1, failed=2)
