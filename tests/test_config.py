"""Contract section C: configuration, engine defaults, secrets, start-up errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from sessionscope import (
    ConfigurationError,
    Database,
    DatabaseConfig,
    DatabaseUnavailableError,
    MissingDriverError,
)


def test_config_rejects_impossible_values() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        DatabaseConfig(pool_size=0)
    with pytest.raises(ValueError, match="pool_timeout"):
        DatabaseConfig(pool_timeout=0)
    with pytest.raises(ValueError, match="sync_in_async"):
        DatabaseConfig(sync_in_async="ignore")  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    config = DatabaseConfig()
    with pytest.raises(AttributeError):
        config.pool_size = 3  # type: ignore[misc]


def test_password_never_in_repr() -> None:
    url = "postgresql+psycopg://app:s3cr3t-pw@db.example/app"
    db = Database(url)
    config = DatabaseConfig(url=url)
    for text_ in (repr(db), str(db), db.url, repr(config)):
        assert "s3cr3t-pw" not in text_
        assert "***" in text_


def test_from_env_reads_database_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:pw@h/db")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "12")
    monkeypatch.setenv("DATABASE_OVERFLOW_IDLE_TIMEOUT", "2.5")
    db = Database.from_env()
    assert db.config.url == "postgresql+asyncpg://u:pw@h/db"
    assert db.config.pool_size == 12
    assert db.config.overflow_idle_timeout == 2.5


def test_from_env_defaults_to_a_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert Database.from_env().config.url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("url", "sync_driver", "async_driver"),
    [
        ("sqlite:///x.db", "sqlite", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+pysqlite", "sqlite+aiosqlite"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg", "postgresql+asyncpg"),
        ("postgresql+asyncpg://h/db", "postgresql+psycopg", "postgresql+asyncpg"),
        ("mysql+pymysql://h/db", "mysql+pymysql", "mysql+aiomysql"),
        ("mysql+aiomysql://h/db", "mysql+pymysql", "mysql+aiomysql"),
    ],
)
def test_one_url_gives_both_flavours(url: str, sync_driver: str, async_driver: str) -> None:
    db = Database(url)
    assert db.sync_engine.url.drivername == sync_driver
    assert db.async_engine.url.drivername == async_driver


def test_explicit_flavour_urls_win() -> None:
    db = Database("postgresql+psycopg://h/db", async_url="postgresql+psycopg://h/other")
    assert db.async_engine.url.database == "other"


def test_mysql_defaults_recycle_and_utf8mb4() -> None:
    db = Database("mysql+pymysql://root@127.0.0.1/test")
    assert db.sync_engine.url.query["charset"] == "utf8mb4"
    assert db.sync_engine.pool._recycle == 3600  # type: ignore[attr-defined]


def test_sql_parameters_are_hidden_from_logs(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    shut_down_after: Callable[[Database], Database],
) -> None:
    db = shut_down_after(Database(f"sqlite:///{tmp_path / 'log.db'}", echo=True))
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"), db.transaction() as session:
        session.execute(text("SELECT :value"), {"value": "secret-value"})
    assert "SELECT ?" in caplog.text
    assert "secret-value" not in caplog.text


def test_missing_driver_names_the_extra() -> None:
    with pytest.raises(MissingDriverError, match=r'pip install "sessionscope\[postgres\]"'):
        _ = Database("postgresql+pg8000://u:pw@h/db").sync_engine


def test_unparseable_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot parse"):
        Database("not a url")


def test_unreachable_database_fails_startup_without_the_password() -> None:
    db = Database("postgresql+psycopg://app:s3cr3t-pw@127.0.0.1:9/app")

    async def start() -> None:
        await db.startup()

    with pytest.raises(DatabaseUnavailableError) as caught:
        anyio.run(start)
    message = str(caught.value)
    assert "127.0.0.1:9" in message
    assert "s3cr3t-pw" not in message
    assert "DATABASE_URL" in message


def test_lifespan_disposes_the_engines(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    db = Database(f"sqlite:///{tmp_path / 'life.db'}")
    app = FastAPI(lifespan=db.lifespan)
    with TestClient(app):
        assert db._sync_binds is not None
    assert db._sync_binds is None
    assert db._async_binds is None


def test_every_field_is_documented() -> None:
    import dataclasses

    page = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for field in dataclasses.fields(DatabaseConfig):
        assert f"`{field.name}`" in page, field.name


def test_database_from_a_config_object(tmp_path: Path) -> None:
    config = DatabaseConfig(url=f"sqlite:///{tmp_path / 'c.db'}", pool_size=2, max_overflow=0)
    db = Database(config=config)
    assert db.config is config
    assert db.sync_engine.pool.size() == 2  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="either"):
        Database("sqlite://", config=config)


def test_forked_worker_gets_fresh_pools(
    tmp_path: Path, shut_down_after: Callable[[Database], Database]
) -> None:
    import multiprocessing

    db = shut_down_after(Database(f"sqlite:///{tmp_path / 'fork.db'}"))
    with db.sync_engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    assert db.sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_report_pool, args=(db, queue))
    child.start()
    child.join(timeout=30)
    assert queue.get(timeout=5) == 0
    assert db.sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]


def _report_pool(db: Database, queue: object) -> None:
    queue.put(db.sync_engine.pool.checkedin())  # type: ignore[attr-defined]
