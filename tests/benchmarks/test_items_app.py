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


@pytest.mark.postgres
@pytest.mark.parametrize("async_driver", ["asyncpg", "psycopg"])
def test_fast_path_service_keeps_the_contract(
    monkeypatch: pytest.MonkeyPatch, async_driver: str
) -> None:
    """``benchmarks/items_fastpath.py``: the same endpoints, answers and commit, on asyncpg
    (``DATABASE_URL`` alone) and on psycopg (``DATABASE_ASYNC_URL`` naming it)."""
    from sqlalchemy import create_engine, make_url

    from tests.conftest import require_server

    url = make_url(require_server("postgres"))
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS items")
    monkeypatch.setenv(
        "DATABASE_URL", url.set(drivername="postgresql+asyncpg").render_as_string(False)
    )
    if async_driver == "psycopg":
        monkeypatch.setenv("DATABASE_ASYNC_URL", url.render_as_string(False))
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for name in ("items_fastpath", "items_model"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        module = importlib.import_module("items_fastpath")
        body, get_status, missing_status = anyio.run(post_then_get, module.app)
        assert body == {"id": body["id"], "name": "lamp", "description": "brass"}
        assert (get_status, missing_status) == (200, 404)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT id, name, description FROM items").all()
        assert [tuple(row) for row in rows] == [(body["id"], "lamp", "brass")]
    finally:
        for name in ("items_fastpath", "items_model"):
            sys.modules.pop(name, None)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS items")
        engine.dispose()
