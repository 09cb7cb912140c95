"""The pagination page's examples (docs_src/pagination), run as written."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def notes_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'notes.db'}")
    module = importlib.reload(importlib.import_module("docs_src.pagination.app"))
    module.Base.metadata.create_all(module.db.sync_engine)
    with module.db.transaction() as session:
        for n in range(1, 8):
            session.add(module.Note(author="ada" if n % 2 else "bob", text=f"note {n}"))
    yield module
    module.db.sync_engine.dispose()


def test_notes_come_newest_first_page_by_page(notes_app: ModuleType) -> None:
    with TestClient(notes_app.app) as client:
        seen: list[int] = []
        params: dict[str, str | int] = {"limit": 3}
        while True:
            page = client.get("/notes", params=params).json()
            assert page["total"] == 7
            seen += [note["id"] for note in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": 3, "cursor": page["next_cursor"]}
        assert seen == [7, 6, 5, 4, 3, 2, 1]
        by_ada = client.get("/notes", params={"author": "ada", "limit": 2}).json()
        assert ([note["id"] for note in by_ada["items"]], by_ada["total"]) == ([7, 5], 4)
        offset = client.get("/notes", params={"limit": 2, "offset": 5}).json()
        assert [note["id"] for note in offset["items"]] == [2, 1]
        forged = client.get("/notes", params={"cursor": "eyJpZCI6IDF9"})
        assert forged.status_code == 422
        assert client.get("/notes", params={"limit": 51}).status_code == 422


def test_the_export_reads_every_note_once(notes_app: ModuleType) -> None:
    export = importlib.reload(importlib.import_module("docs_src.pagination.export"))
    lines = export.export_notes(notes_app.db, batch=3)
    assert [line.split("\t")[0] for line in lines] == [str(n) for n in range(1, 8)]
    assert lines[0] == "1\tada\tnote 1"
