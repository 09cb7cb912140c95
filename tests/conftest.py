"""Shared fixtures: one parametrized database fixture over real servers.

SQLite always runs. PostgreSQL and MariaDB run wherever their servers answer; with
``CI=true`` a server that does not answer fails the run instead of skipping it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import create_engine, make_url

from sessionscope import Database

POSTGRES_URL = os.environ.get(
    "SESSIONSCOPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "SESSIONSCOPE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
SERVER_URLS = {"postgres": POSTGRES_URL, "mariadb": MARIADB_URL}


@functools.cache
def server_problem(url: str) -> str | None:
    """Why the server behind ``url`` cannot be used, or ``None`` when it answers."""
    engine = create_engine(url, connect_args=_connect_timeout(url))
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


def _connect_timeout(url: str) -> dict[str, int]:
    backend = make_url(url).get_backend_name()
    return {"connect_timeout": 3} if backend in ("postgresql", "mysql", "mariadb") else {}


def require_server(backend: str) -> str:
    """The URL of a server backend; skip (fail under CI) when it does not answer."""
    url = SERVER_URLS[backend]
    problem = server_problem(url)
    if problem is not None:
        message = f"{backend} server at {make_url(url).render_as_string()} unusable: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: servers are required)", pytrace=False)
        pytest.skip(message)
    return url


BACKEND_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the database backend under test."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A sync URL of an empty database of each backend (the async twin is derived)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        yield require_server(backend)


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    """``"sync"`` or ``"async"``: which session flavour the test drives."""
    return str(request.param)


@pytest.fixture
def shut_down_after() -> Iterator[Callable[[Database], Database]]:
    """Hands back the ``Database`` it is given and shuts it down when the test ends.

    A ``Database`` used without an app's lifespan (``db.transaction()`` as in a script) keeps
    its pooled connections until ``shutdown()``; left to the garbage collector, each one is a
    ``ResourceWarning: unclosed database`` (Python 3.13) in whichever test runs then.
    """
    databases: list[Database] = []

    def register(db: Database) -> Database:
        databases.append(db)
        return db

    yield register
    for db in databases:
        anyio.run(db.shutdown)
