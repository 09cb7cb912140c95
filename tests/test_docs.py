"""Every snippet of the docs is a file; this runs them."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine


@pytest.fixture
def quickstart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    # As written: no DATABASE_URL, so its default SQLite file, fresh, in the working directory;
    # the app creates its own tables.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module("docs_src.quickstart.app")
    module = importlib.reload(module)  # a Database for this test's directory
    with TestClient(module.app) as client:
        yield client
    assert (tmp_path / "sessionscope.db").exists()


def test_quickstart_as_written_answers_201_then_200(quickstart: TestClient) -> None:
    created = quickstart.post("/notes", json={"text": "first run"})
    assert created.status_code == 201, created.text
    read = quickstart.get(f"/notes/{created.json()['id']}")
    assert read.status_code == 200, read.text
    assert read.json() == {"id": created.json()["id"], "text": "first run"}


def test_quickstart_creates_and_reads_a_note(quickstart: TestClient) -> None:
    created = quickstart.post("/notes", json={"text": "hello"})
    assert created.status_code == 201
    note = created.json()
    assert note["text"] == "hello"
    assert quickstart.get(f"/notes/{note['id']}").json() == note
    assert quickstart.get("/notes/999").status_code == 404


@pytest.mark.parametrize(
    ("module_name", "refused_rows_kept"),
    [("get_db_seed", 1), ("sessionscope_version", 0)],
)
def test_a_refused_write_is_kept_only_by_the_seed_pattern(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module_name: str, refused_rows_kept: int
) -> None:
    url = f"sqlite:///{tmp_path / 'compare.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    app_module = importlib.import_module("docs_src.quickstart.app")
    module = importlib.reload(importlib.import_module(f"docs_src.quickstart.{module_name}"))
    engine = create_engine(url)
    app_module.Base.metadata.create_all(engine)
    with TestClient(module.app) as client:
        assert client.post("/notes", params={"text": "fine"}).status_code == 201
        assert client.post("/notes", params={"text": "!refused"}).status_code == 400
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT text FROM notes WHERE text LIKE '!%'").all()
    engine.dispose()
    if hasattr(module, "engine"):
        module.engine.dispose()
    assert len(rows) == refused_rows_kept


def test_observability_capture_shows_each_feature(tmp_path: Path) -> None:
    """docs/observability.md shows this script's output; it must keep showing each feature."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'books.db'}"}
    env = {k: v for k, v in env.items() if not k.startswith("DATABASE_") or k == "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "docs_src.observability.capture"],
        cwd=Path(__file__).parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = result.stdout
    assert "query budget exceeded on GET /authors/n-plus-one: 14 statements (budget 10); " in out
    # The statement as SQLAlchemy renders it (column labels vary between its releases).
    assert re.search(r"sent 12 times: SELECT books\.id\b.* FROM books WHERE ", out), out
    assert "server-timing: db;dur=0." in out
    assert 'desc="3 queries"' in out
    assert "slow query: " in out
    assert "on GET /report: WITH RECURSIVE" in out
    assert "{'books': 24, 'statements': 14}" in out
    assert 'sessionscope_units_total{database="default",outcome="commit"} 4.0' in out
    if "\nserver " in out:  # FastAPI releases that trace their requests (0.165 does)
        assert "internal sessionscope unit of work {'http.route': '/authors'" in out
