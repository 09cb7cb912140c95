"""Contract C2: SQLite defaults that keep data and make concurrency safe."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from sessionscope import Database


@pytest.fixture
def file_db(tmp_path: Path, shut_down_after: Callable[[Database], Database]) -> Database:
    return shut_down_after(Database(f"sqlite:///{tmp_path / 'app.db'}"))


def test_pragmas_on_every_connection(file_db: Database) -> None:
    with file_db.transaction(readonly=True) as session:
        assert session.scalar(text("PRAGMA foreign_keys")) == 1
        assert session.scalar(text("PRAGMA journal_mode")) == "wal"
        assert (session.scalar(text("PRAGMA busy_timeout")) or 0) >= 5000


def test_savepoints_work(file_db: Database) -> None:
    with file_db.transaction() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
        nested = session.begin_nested()
        session.execute(text("INSERT INTO t VALUES (2)"))
        nested.rollback()
    with file_db.transaction(readonly=True) as session:
        assert list(session.scalars(text("SELECT x FROM t"))) == [1]


def _other_writer_blocked(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


def test_writing_units_take_the_write_lock_at_begin(
    tmp_path: Path, shut_down_after: Callable[[Database], Database]
) -> None:
    path = tmp_path / "lock.db"
    db = shut_down_after(Database(f"sqlite:///{path}"))
    with db.transaction() as session:
        session.execute(text("SELECT 1"))
        assert _other_writer_blocked(path)
    with db.transaction(readonly=True) as session:
        session.execute(text("SELECT 1"))
        assert not _other_writer_blocked(path)


def test_memory_database_is_one_shared_connection(
    shut_down_after: Callable[[Database], Database],
) -> None:
    db = shut_down_after(Database("sqlite://"))
    with db.transaction() as session:
        session.execute(text("CREATE TABLE shared (x INTEGER)"))
        session.execute(text("INSERT INTO shared VALUES (42)"))
    seen: list[int] = []

    def read_in_another_thread() -> None:
        with db.transaction(readonly=True) as session:
            seen.extend(session.scalars(text("SELECT x FROM shared")))

    thread = threading.Thread(target=read_in_another_thread)
    thread.start()
    thread.join()
    assert seen == [42]
