"""The examples of docs/testing.md (docs_src/testing/), run as the user would run them."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import inprocess  # noqa: F401
import plugin_project
import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from sessionscope import Database

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).parents[2] / "docs_src" / "testing"

# example -> (its table, outcome of its tests)
CASES = {
    "sync": ("testing_sync_notes", 2),
    "async": ("testing_async_notes", 3),
    "factory": ("testing_factory_notes", 2),
    "mixed": ("testing_mixed_notes", 3),
}


@pytest.fixture(params=list(CASES))
def example(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    name = str(request.param)
    yield name
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {CASES[name][0]}"))
    finally:
        engine.dispose()


def test_example_passes_and_leaves_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, database_url: str, example: str
) -> None:
    for source in (EXAMPLES / example).glob("*.py"):
        shutil.copy(source, pytester.path / source.name)
    pytester.makeini(plugin_project.INI)
    monkeypatch.setenv("DATABASE_URL", database_url)

    result = pytester.runpytest_inprocess("--sessionscope-url", database_url)

    table, passed = CASES[example]
    result.assert_outcomes(passed=passed)
    engine = create_engine(database_url)
    try:
        assert inspect(engine).has_table(table)
        with engine.connect() as connection:
            assert connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0
    finally:
        engine.dispose()


def test_without_pytest(database_url: str) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import without_pytest
    finally:
        sys.path.remove(str(EXAMPLES))
    db = Database(database_url)
    without_pytest.metadata.create_all(db.sync_engine)
    try:
        assert without_pytest.check(db) == 1
        with db.sync_engine.connect() as connection:
            count = select(func.count()).select_from(without_pytest.notes)
            assert connection.scalar(count) == 0
    finally:
        without_pytest.metadata.drop_all(db.sync_engine)
        anyio.run(db.shutdown)
