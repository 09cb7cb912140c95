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
    with pytest.raises(ConfigurationError, match="pool_size"):
        DatabaseConfig(pool_size=0)
    with pytest.raises(ConfigurationError, match="pool_timeout"):
        DatabaseConfig(pool_timeout=0)
    with pytest.raises(ConfigurationError, match="sync_in_async"):
        DatabaseConfig(sync_in_async="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_overflow"):
        DatabaseConfig(max_overflow=-2)
    with pytest.raises(ConfigurationError, match="overflow_idle_timeout"):
        DatabaseConfig(overflow_idle_timeout=-1)
    with pytest.raises(ConfigurationError, match="ping_after_idle"):
        DatabaseConfig(ping_after_idle=-1)
    with pytest.raises(ConfigurationError, match="idempotency_ttl"):
        DatabaseConfig(idempotency_ttl=0)


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
    monkeypatch.setenv("DATABASE_IDEMPOTENCY_TTL", "3600")
    db = Database.from_env()
    assert db.config.idempotency_ttl == 3600
    assert db.config.url == "postgresql+asyncpg://u:pw@h/db"
    assert db.config.pool_size == 12
    assert db.config.overflow_idle_timeout == 2.5


def test_from_env_falls_back_only_to_a_default_url_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match=r"DATABASE_URL is not set.*default_url="):
        Database.from_env()
    assert Database.from_env(default_url="sqlite:///./local.db").config.url == (
        "sqlite:///./local.db"
    )
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./deployed.db")
    assert Database.from_env(default_url="sqlite:///./local.db").config.url == (
        "sqlite:///./deployed.db"
    )


def test_from_env_reads_an_env_file_when_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_POOL_SIZE", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DATABASE_URL=postgresql+psycopg://app:pw@db.example/app\nDATABASE_POOL_SIZE=7\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"not set in the environment\b"):
        Database.from_env()  # a .env file is read only when asked
    db = Database.from_env(env_file=".env")
    assert (db.config.url, db.config.pool_size) == ("postgresql+psycopg://app:pw@db.example/app", 7)
    monkeypatch.setenv("DATABASE_POOL_SIZE", "9")  # the environment wins over the file
    assert Database.from_env(env_file=env_file).config.pool_size == 9


def test_startup_logs_the_masked_url_and_each_flavour_s_driver(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = Database("postgresql+psycopg://app:s3cr3t-pw@db.example/app", check_on_startup=False)
    with caplog.at_level(logging.INFO, logger="sessionscope"):
        anyio.run(db.startup)
        db.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "sessionscope"]
    assert lines == [
        "database postgresql://app:***@db.example/app: sync sessions through psycopg, "
        "async sessions through asyncpg"
    ]


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
    engines = []

    @app.get("/")
    def engine_in_use() -> None:
        engines.append((db.sync_engine, db.async_engine))

    with TestClient(app) as client:
        client.get("/")
        sync_engine, async_engine = engines[0]
        assert sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
        assert async_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    # Both flavours were checked at start-up; disposing closed their connections.
    assert sync_engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    assert async_engine.pool.checkedin() == 0  # type: ignore[attr-defined]


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
    with pytest.raises(ConfigurationError, match="either"):
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


def test_sessionscope_loggers_carry_only_sessionscope_s_own_messages(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from fastapi import FastAPI

    from sessionscope.testing import app_client

    db = Database(f"sqlite:///{tmp_path / 'logs.db'}")
    app = FastAPI(lifespan=db.lifespan)
    with caplog.at_level(logging.INFO), app_client(app):
        pass  # start-up and shutdown: engines created, checked and disposed of
    ours = [(r.name, r.getMessage()) for r in caplog.records if r.name.startswith("sessionscope")]
    assert ours == [
        (
            "sessionscope",
            f"database sqlite:///{tmp_path / 'logs.db'}: sync sessions through "
            "pysqlite, async sessions through aiosqlite",
        )
    ]
    # The pools' own messages ("Pool disposed...") went to SQLAlchemy's loggers, which are
    # quiet unless echo_pool is set.
    assert not any("Pool disposed" in message for _, message in ours)
