"""URLs as people paste them: ``postgres://`` (Heroku, Render, Fly), URLs without a driver,
unknown drivers and databases, drivers the extras do not install."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import make_url, text

from sessionscope import ConfigurationError, Database, MissingDriverError

from .conftest import require_server


def _served_urls(db: Database) -> tuple[str, str]:
    return db.sync_engine.url.drivername, db.async_engine.url.drivername


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgres+asyncpg"])
def test_postgres_urls_without_our_driver_names_work(scheme: str) -> None:
    url = make_url(require_server("postgres")).set(drivername=scheme)
    db = Database(url.render_as_string(hide_password=False))
    with db:
        assert _served_urls(db) == ("postgresql+psycopg", "postgresql+asyncpg")
        with db.transaction() as session:
            assert session.scalar(text("SELECT 1")) == 1

        async def query() -> int | None:
            try:
                async with db.transaction() as session:
                    return await session.scalar(text("SELECT 2"))
            finally:
                await db.shutdown()

        assert anyio.run(query) == 2


def test_mysql_and_mariadb_urls_without_a_driver_use_pymysql() -> None:
    for scheme in ("mysql", "mariadb"):
        db = Database(f"{scheme}://user:pw@db.example/app", check_on_startup=False)
        assert _served_urls(db) == (f"{scheme}+pymysql", f"{scheme}+aiomysql")
        db.close()


def test_an_unknown_driver_names_the_url_forms_and_the_extra() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Database("postgresql+psycopg4://app:s3cret@db.example/app")
    message = str(caught.value)
    assert "unknown driver 'psycopg4'" in message
    assert "'postgresql+psycopg://...'" in message
    assert "'postgresql+asyncpg://...'" in message
    assert 'pip install "sessionscope[postgres]"' in message
    assert "s3cret" not in message


def test_an_unknown_database_names_every_url_form() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Database("postgress://app:s3cret@db.example/app")
    message = str(caught.value)
    assert "unknown database 'postgress'" in message
    for form in ("postgresql+psycopg://", "mysql+pymysql://", "sqlite:///"):
        assert form in message
    assert "s3cret" not in message


def test_a_driver_the_extra_does_not_install_names_the_url_form_of_the_extra() -> None:
    # mysqlclient (SQLAlchemy's default MySQL driver) is not what the mysql extra installs:
    # telling the user to install the extra they already have would not fix anything.
    with pytest.raises(MissingDriverError) as caught:
        _ = Database("mysql+mysqldb://root@db.example/app").sync_engine
    message = str(caught.value)
    assert "'mysql+pymysql://...'" in message
    assert 'pip install "sessionscope[mysql]"' in message
    assert "install the 'mysqldb' driver yourself" in message
