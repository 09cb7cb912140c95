"""The benchmarks' items service keeps its contract: outside tooling runs it as is.

Nothing here is timed; the numbers come from ``benchmarks/run.py``.
"""

from __future__ import annotations

import importlib
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType

import anyio
import httpx
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    return tmp_path / "items.db"


@pytest.fixture
def items_app(database_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``benchmarks/items_app.py`` imported afresh, configured only by ``DATABASE_URL``."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database_file}")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for name in ("items_app", "items_model"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module("items_app")
    for name in ("items_app", "items_model"):
        sys.modules.pop(name, None)


async def post_then_get(app: object) -> tuple[dict[str, object], int, int]:
    """POST one item, GET it back and GET the next id, with the app's lifespan running."""
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://items") as client:
            created = await client.post("/items/", params={"name": "lamp", "description": "brass"})
            assert created.status_code == 200
            body: dict[str, object] = created.json()
            fetched = await client.get(f"/items/{body['id']}")
            assert fetched.json() == body
            missing = await client.get(f"/items/{int(str(body['id'])) + 1}")
            return body, fetched.status_code, missing.status_code


def test_post_commits_a_row_that_get_returns(items_app: ModuleType, database_file: Path) -> None:
    body, get_status, missing_status = anyio.run(post_then_get, items_app.app)

    assert body == {"id": body["id"], "name": "lamp", "description": "brass"}
    assert (get_status, missing_status) == (200, 404)
    # sqlite3's own context manager ends a transaction but leaves the connection open.
    with closing(sqlite3.connect(database_file)) as connection:
        rows = connection.execute("SELECT id, name, description FROM items").fetchall()
    assert rows == [(body["id"], "lamp", "brass")]
