"""The pytest plugin, run with ``pytester`` in-process against every backend.

Each run is a small user project whose tests write through the API and then expect an empty
table; the outer test also checks the real table afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import inprocess  # noqa: F401
import plugin_project
import pytest
from sqlalchemy import create_engine, text

pytest_plugins = ["pytester"]


@pytest.fixture
def table(database_url: str) -> Iterator[str]:
    """A table name of this test alone; the table is dropped afterwards, pass or fail."""
    name = f"tst_plugin_{uuid.uuid4().hex[:10]}"
    yield name
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
    finally:
        engine.dispose()


def rows_in(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def write_project(pytester: pytest.Pytester, *, table: str, kind: str) -> None:
    flavour, tests = plugin_project.KINDS[kind]
    pytester.makepyfile(**plugin_project.files(table=table, flavour=flavour))
    pytester.makepyfile(test_roundtrip=tests)
    pytester.makeini(plugin_project.INI)


@pytest.mark.parametrize("kind", list(plugin_project.KINDS))
def test_each_test_starts_from_an_empty_table(
    pytester: pytest.Pytester, database_url: str, table: str, kind: str
) -> None:
    write_project(pytester, table=table, kind=kind)
    result = pytester.runpytest_inprocess("--sessionscope-url", database_url)
    result.assert_outcomes(passed=3)
    assert rows_in(database_url, table) == 0


@pytest.mark.parametrize("kind", list(plugin_project.KINDS))
def test_in_memory_sqlite(pytester: pytest.Pytester, kind: str) -> None:
    write_project(pytester, table="tst_plugin_items", kind=kind)
    # Fixed order: the write must come before the test that expects an empty table.
    result = pytester.runpytest_inprocess("--sessionscope-url", "sqlite://", "-p", "no:randomly")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize("kind", list(plugin_project.FAILING))
def test_a_failing_test_leaves_the_database_clean(
    pytester: pytest.Pytester, database_url: str, table: str, kind: str
) -> None:
    write_project(pytester, table=table, kind=kind)
    pytester.makepyfile(test_roundtrip=plugin_project.FAILING[kind])
    result = pytester.runpytest_inprocess("--sessionscope-url", database_url, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*this test fails on purpose after its write*"])
    assert rows_in(database_url, table) == 0


ON_TRIO = """
import pytest


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio(sessionscope_async_session):
    raise AssertionError("never reached: the fixture refuses the backend")
"""


def test_async_fixtures_on_another_backend_fail_with_the_fix(pytester: pytest.Pytester) -> None:
    """AnyIO's plugin runs async tests on every installed backend; the drivers need asyncio."""
    write_project(pytester, table="tst_plugin_items", kind="async-app")
    pytester.makepyfile(test_roundtrip=ON_TRIO)
    result = pytester.runpytest_inprocess("--sessionscope-url", "sqlite://", "-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*async fixtures run on asyncio only*'trio'*", "*def anyio_backend():*"]
    )
