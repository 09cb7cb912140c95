"""A fresh user project per test: an app module in a temporary directory, the current
directory, with the database emptied of its tables before and after."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, make_url

from ..conftest import require_server

APP_SOURCE = """\
from fastapi import FastAPI
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import Database

db = Database.from_env()
app = FastAPI(lifespan=db.lifespan)


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "cli_authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Book(Base):
    __tablename__ = "cli_books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("cli_authors.id"))
    title: Mapped[str] = mapped_column(String(200))
"""
APP_MODULE = "cli_notes_app"
APP_TABLES = {"cli_authors", "cli_books"}
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
}


def async_twin(url: str) -> str:
    """The same database through the backend's async driver."""
    parsed = make_url(url)
    return parsed.set(drivername=ASYNC_DRIVERS[parsed.get_backend_name()]).render_as_string(
        hide_password=False
    )


def tables(url: str) -> set[str]:
    """The tables of the database at (sync) ``url``."""
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@contextmanager
def empty_database(server_url: str) -> Iterator[str]:
    """A database of its own on the server of ``server_url``, created empty and dropped at
    the end: ``--autogenerate`` compares with every table of the database, and the test
    database holds the other tests' tables."""
    url = make_url(server_url)
    name = f"{url.database}_cli_migrations"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        yield url.set(database=name).render_as_string(hide_password=False)
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
    finally:
        engine.dispose()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The sync URL of an empty database of each backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
    else:
        with empty_database(require_server(backend)) as url:
            yield url


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_database_url: str
) -> Iterator[Path]:
    """A directory holding the app module ``cli_notes_app`` (its Database from
    ``DATABASE_URL``: an empty database), made the current directory."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / f"{APP_MODULE}.py").write_text(APP_SOURCE)
    monkeypatch.chdir(directory)
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    yield directory
    for name, module in list(sys.modules.items()):  # the next test imports its own
        if str(getattr(module, "__file__", None) or "").startswith(str(directory)):
            del sys.modules[name]
