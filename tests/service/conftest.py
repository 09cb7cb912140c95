"""Set-up of the service tests, through sessionscope's own pytest plugin.

The service is tested as any sessionscope user would test theirs. The plugin's
``sessionscope_url`` fixture is overridden to run over every backend: for each one the schema
is made once by the service's Alembic migrations (outside any test transaction: DDL commits
on MariaDB) and removed when that backend's tests are done. Each in-process test then gets
the plugin's ``sessionscope_client``: its requests run inside one outer transaction that is
rolled back at the end of the test, pass or fail, the service's commits landing on
SAVEPOINTs. No test deletes rows by hand.

Tests that need a real server (``live_server``) cannot share that transaction: see there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from sessionscope import Database
from sessionscope_demo import ServiceSettings, create_app
from sessionscope_demo.migrate import VERSION_TABLE, current_revision, downgrade, upgrade
from sessionscope_demo.models import idempotency_keys

from ..conftest import BACKEND_PARAMS, require_server

FAST_HASHING = {
    # Argon2 at its cheapest: the tests check that hashing happens, not how hard it is.
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "password_hash_parallelism": 1,
}
SERVICE_TABLES = ("demo_items", "demo_users")  # children first


def make_settings(url: str, **overrides: object) -> ServiceSettings:
    values: dict[str, object] = {"database_url": url, **FAST_HASHING, **overrides}
    return ServiceSettings(**values)  # type: ignore[arg-type]


def migrate(url: str, revision: str = "head") -> None:
    db = Database(url)
    try:
        if revision == "base":
            downgrade(db, "base")
        else:
            upgrade(db, revision)
    finally:
        db.sync_engine.dispose()


def drop_schema(url: str) -> None:
    """Migrate down and drop Alembic's version table: the server as it was before the tests."""
    db = Database(url)
    try:
        if current_revision(db) is not None:
            downgrade(db, "base")
        with db.sync_engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
            # Left by an interrupted run of the library's tests, it would stop migration 0003.
            connection.execute(text(f"DROP TABLE IF EXISTS {idempotency_keys.name}"))
    finally:
        db.sync_engine.dispose()


def delete_rows(url: str) -> None:
    db = Database(url)
    try:
        with db.sync_engine.begin() as connection:
            for table in SERVICE_TABLES:
                connection.execute(text(f"DELETE FROM {table}"))
    finally:
        db.sync_engine.dispose()


@pytest.fixture(scope="session", params=BACKEND_PARAMS)
def sessionscope_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The plugin's database URL, once per backend, with the service's schema migrated in.

    A schema left behind by an interrupted run is dropped first, so every run starts from
    the migrations and from empty tables.
    """
    backend = str(request.param)
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('service') / 'demo.db'}"
    else:
        url = require_server(backend)
        drop_schema(url)
    migrate(url)
    yield url
    drop_schema(url)


@pytest.fixture(scope="session")
def settings(sessionscope_url: str) -> ServiceSettings:
    return make_settings(sessionscope_url)


@pytest.fixture(scope="session")
def sessionscope_app(settings: ServiceSettings) -> Iterator[FastAPI]:
    """The service under test; the plugin finds its Database on the app's lifespan."""
    app = create_app(settings)
    yield app
    anyio.run(app.state.db.shutdown)


@pytest.fixture
def client(sessionscope_client: httpx.Client) -> httpx.Client:
    """The plugin's client: the app's lifespan running, every request in the test's
    transaction."""
    return sessionscope_client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the database drivers are asyncio libraries


@dataclass
class LiveServer:
    url: str
    app: FastAPI


@pytest.fixture
def live_server(settings: ServiceSettings) -> Iterator[LiveServer]:
    """The service served by a real uvicorn on 127.0.0.1, on its own connections.

    Its requests cannot run in the test's rolled-back transaction: the tests that need a
    live server are about several transactions racing (twenty concurrent sign-ups, where
    the database's unique index must refuse all but one), and one shared connection would
    serialise them and test nothing. Its commits are real, so the rows are deleted after the
    test, pass or fail, and the in-process tests keep finding empty tables.
    """
    app = create_app(settings)
    url = settings.database_url.get_secret_value()
    try:
        with serve_in_thread(app) as base_url:
            yield LiveServer(url=base_url, app=app)
    finally:
        delete_rows(url)


@contextmanager
def sqlite_live_server(directory: Path) -> Iterator[LiveServer]:
    """A live server on a migrated SQLite file of its own, which goes with ``directory``:
    for tests whose subject is not the database, so that nothing they commit can reach the
    shared schema."""
    url = f"sqlite:///{directory / 'demo.db'}"
    migrate(url)
    app = create_app(make_settings(url))
    with serve_in_thread(app) as base_url:
        yield LiveServer(url=base_url, app=app)


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread keeps its handlers
        pass


def serve_in_thread(app: FastAPI) -> _Serving:
    return _Serving(app)


class _Serving:
    """Context manager: uvicorn in a daemon thread, stopped and joined on exit."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="on"
        )
        self.server = _ThreadServer(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the uvicorn test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        httpx.get(f"{url}/healthz", timeout=5).raise_for_status()
        return url

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the uvicorn test server did not stop"
