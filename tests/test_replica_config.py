"""Replica configuration and bookmarks without any server: the settings, their errors, the
bookmark's reading and writing, and an app without replicas that stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from sessionscope import ConfigurationError, Database, DbSession, unit_of_work
from sessionscope._bookmarks import (
    UNREADABLE,
    bookmark_headers,
    format_lsn,
    parse_lsn,
    presented_bookmark,
)

from .models import Base, Item

PRIMARY = "postgresql+psycopg://app:secret@db1/shop"
REPLICA = "postgresql+asyncpg://app:secret@db2/shop"


def test_replica_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", PRIMARY)
    monkeypatch.setenv("DATABASE_REPLICA_URLS", f" {REPLICA} ,{REPLICA.replace('db2', 'db3')},")
    monkeypatch.setenv("DATABASE_MAX_REPLICA_LAG", "1.5")
    monkeypatch.setenv("DATABASE_REPLICA_READS", "safe_methods")
    config = Database.from_env().config
    assert config.replicas == (REPLICA, REPLICA.replace("db2", "db3"))
    assert (config.max_replica_lag, config.replica_reads) == (1.5, "safe_methods")
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replicas": [REPLICA], "url": "sqlite:///x.db"}, "PostgreSQL streaming replication"),
        ({"replicas": ["mysql+pymysql://db2/shop"]}, "not a PostgreSQL URL"),
        ({"replicas": REPLICA}, "a list of URLs"),
        ({"max_replica_lag": 0}, "max_replica_lag"),
        ({"replica_check_interval": 0}, "replica_check_interval"),
        ({"bookmark_wait": -1}, "bookmark_wait"),
        ({"replica_reads": "everything"}, "replica_reads"),
        ({"bookmark_header": ""}, "bookmark_header"),
    ],
)
def test_replica_misconfiguration_is_a_configuration_error(
    options: dict[str, object], message: str
) -> None:
    url = str(options.pop("url", PRIMARY))
    with pytest.raises(ConfigurationError, match=message):
        Database(url, **options)  # type: ignore[arg-type]


def test_positions_read_and_write_like_postgres() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848") or 0) == "16/B374D848"
    for malformed in ("", "16", "/1", "16/", "x/1", "123456789/1", "1/2/3"):
        assert parse_lsn(malformed) is None, malformed


def test_a_bookmark_is_read_from_the_header_or_the_cookie() -> None:
    header = b"x-db-bookmark"
    assert presented_bookmark([(b"accept", b"*/*")], header, None) == 0
    assert presented_bookmark([(header, b"0/3000148")], header, None) == 0x3000148
    assert presented_bookmark([(header, b"nonsense")], header, None) == UNREADABLE
    cookie = [(b"cookie", b"theme=dark; db_bookmark=0/10")]
    assert presented_bookmark(cookie, header, "db_bookmark") == 0x10
    assert presented_bookmark(cookie, header, None) == 0
    assert presented_bookmark([(b"cookie", b"other=1")], header, "db_bookmark") == 0
    assert bookmark_headers("0/10", "X-DB-Bookmark", "db_bookmark") == [
        (b"x-db-bookmark", b"0/10"),
        (b"set-cookie", b"db_bookmark=0/10; Path=/; SameSite=Lax; HttpOnly"),
    ]


def test_without_replicas_responses_carry_nothing_new(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'plain.db'}", served_by_header="X-Served-By")
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/")
    def write(session: DbSession) -> int:
        session.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
        return 1

    @app.get("/", dependencies=[unit_of_work(readonly=True)])
    def read(session: DbSession) -> int:
        return int(session.execute(text("SELECT count(*) FROM t")).scalar_one())

    with TestClient(app) as client:
        written = client.post("/")
        read_back = client.get("/", headers={"X-DB-Bookmark": "0/1"})
    assert (written.json(), read_back.json()) == (1, 1)
    for response in (written, read_back):
        assert "x-db-bookmark" not in response.headers
        assert "x-served-by" not in response.headers
    assert db.replica_status() == []


def test_safe_methods_make_get_units_read_only_without_replicas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'safe.db'}", replica_reads="safe_methods")
    Base.metadata.create_all(db.sync_engine)
    db.close()
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/write")
    def write_on_get(session: DbSession) -> None:
        session.add(Item(name="on get"))
        session.flush()

    @app.get("/write/declared", dependencies=[unit_of_work(write=True)])
    def declared_write_on_get(session: DbSession) -> None:
        session.add(Item(name="declared"))

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/write").status_code == 500  # refused: a GET is read-only now
        assert client.get("/write/declared").status_code == 200
    with db.transaction(readonly=True) as session:
        assert list(session.scalars(select(Item.name))) == ["declared"]
    db.close()
