"""Set-up of the service tests: a migrated schema per database, an app, a live server.

Everything database-specific sits here so that the per-test isolation can change in one place.
Today the schema is migrated once per server (SQLite: once per test, in a fresh file) and every
row of the service's ``demo_`` tables is deleted before and after each test; the tables are
dropped (migrated down) when the session ends, since other test modules share the servers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from sessionscope import Database
from sessionscope_demo import ServiceSettings, create_app
from sessionscope_demo.migrate import VERSION_TABLE, downgrade, upgrade

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


def delete_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in SERVICE_TABLES:
            connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def _migrated_servers() -> Iterator[dict[str, Engine]]:
    """URL -> engine of each server whose schema this session migrated; migrated down at end."""
    migrated: dict[str, Engine] = {}
    yield migrated
    for url, engine in migrated.items():
        migrate(url, "base")
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        engine.dispose()


@pytest.fixture
def service_url(
    database_url: str, backend: str, _migrated_servers: dict[str, Engine]
) -> Iterator[str]:
    """The URL of a database with the service's schema and no rows in it."""
    if backend == "sqlite":
        migrate(database_url)
        yield database_url
        return
    engine = _migrated_servers.get(database_url)
    if engine is None:
        migrate(database_url)
        engine = _migrated_servers[database_url] = create_engine(database_url)
    delete_rows(engine)
    yield database_url
    delete_rows(engine)


@pytest.fixture
def settings(service_url: str) -> ServiceSettings:
    return make_settings(service_url)


@pytest.fixture
def app(settings: ServiceSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client of the app, its lifespan running (engines created, then disposed)."""
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class LiveServer:
    url: str
    app: FastAPI


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    """The app served by a real uvicorn on 127.0.0.1, on a port the OS picked."""
    with serve_in_thread(app) as url:
        yield LiveServer(url=url, app=app)


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
