"""``sessionscope check`` through Typer's test runner: what answered, or why nothing did."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url
from typer.testing import CliRunner

from sessionscope._cli import load

from .conftest import APP_MODULE, async_twin, closed_port

runner = CliRunner()
cli = load()
DRIVERS = {
    ("sqlite", "sync"): "pysqlite",
    ("sqlite", "async"): "aiosqlite",
    ("postgres", "sync"): "psycopg",
    ("postgres", "async"): "asyncpg",
    ("mariadb", "sync"): "pymysql",
    ("mariadb", "async"): "aiomysql",
}
DIALECTS = {"sqlite": "sqlite", "postgres": "postgresql", "mariadb": "mysql"}


def masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_check_reports_what_answered(database_url: str, backend: str, flavour: str) -> None:
    url = async_twin(database_url) if flavour == "async" else database_url
    result = runner.invoke(cli, ["check", "--url", url, "--samples", "3"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"database  {masked(url)}"
    assert lines[1] == f"dialect   {DIALECTS[backend]}"
    assert lines[2] == f"driver    {DRIVERS[backend, flavour]}"
    assert lines[3].startswith("server    ")
    assert lines[3][10].isdigit()
    assert lines[3].endswith(" (MariaDB)") == (backend == "mariadb")
    assert lines[4] == (
        "pool      pool_size=5, max_overflow=10, overflow_idle_timeout=30, pool_timeout=5, "
        "pool_recycle=None, ping_after_idle=1"
    )
    assert lines[5].startswith("latency   ")
    assert lines[5].endswith(" ms (median of 3 round trips of SELECT 1)")
    assert len(lines) == 6


def test_check_reads_the_environment(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_POOL_SIZE", "3")
    monkeypatch.setenv("DATABASE_POOL_TIMEOUT", "2.5")
    result = runner.invoke(cli, ["check"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"database  {masked(database_url)}\n")
    assert "pool      pool_size=3, max_overflow=10, overflow_idle_timeout=30, pool_timeout=2.5" in (
        result.stdout
    )


@pytest.fixture
def app_with_pool_of_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An app module whose Database has pool_size=2, on a SQLite file."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    (tmp_path / "pool_app.py").write_text(
        "from fastapi import FastAPI\n"
        "from sessionscope import Database\n"
        f"db = Database({url!r}, pool_size=2)\n"
        "app = FastAPI(lifespan=db.lifespan)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "sqlite:///never-used.db")
    yield url
    sys.modules.pop("pool_app", None)  # the next test imports its own


def test_check_uses_the_apps_database(app_with_pool_of_two: str) -> None:
    result = runner.invoke(cli, ["check", "--app", "pool_app:app"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"database  {app_with_pool_of_two}\n")
    assert "pool      pool_size=2, " in result.stdout


def test_url_wins_over_the_apps_and_keeps_its_pool_settings(
    app_with_pool_of_two: str, tmp_path: Path
) -> None:
    other = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    result = runner.invoke(cli, ["check", "--app", "pool_app:app", "--url", other])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"database  {other}\ndialect   sqlite\ndriver    aiosqlite\n")
    assert "pool      pool_size=2, " in result.stdout


@pytest.mark.parametrize("driver", ["postgresql+psycopg", "postgresql+asyncpg", "mysql+pymysql"])
def test_unreachable_database_exits_1_with_the_password_masked(driver: str) -> None:
    url = f"{driver}://scott:hunter2secret@127.0.0.1:{closed_port()}/app"
    result = runner.invoke(cli, ["check", "--url", url])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"sessionscope check: cannot reach the database at {driver}://scott:***@127.0.0.1:"
    )
    assert "refused" in result.stderr.lower()
    assert "hunter2secret" not in result.stderr


@pytest.mark.parametrize("driver", ["postgresql+psycopg", "postgresql+asyncpg"])
def test_a_database_that_never_answers_fails_after_the_timeout(driver: str) -> None:
    # A socket that accepts connections (the kernel completes the handshake) and never says a
    # word: the driver waits for the server's greeting.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"{driver}://scott:hunter2secret@127.0.0.1:{silent.getsockname()[1]}/app"
        result = runner.invoke(cli, ["check", "--url", url, "--timeout", "0.5"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"sessionscope check: the database at {masked(url)} did not answer within 0.5 s\n"
    )


def test_a_missing_driver_names_what_to_install() -> None:
    result = runner.invoke(cli, ["check", "--url", "mssql+pyodbc://scott:tiger@dsn"])
    assert result.exit_code == 1
    assert "install the DBAPI driver for 'mssql+pyodbc'" in result.stderr
    assert "tiger" not in result.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module:app", "cannot import the app 'no_such_module:app' (ModuleNotFoundError"),
        (f"{APP_MODULE}_missing", "cannot import the app"),
        ("sessionscope:Database", "no sessionscope Database found in 'sessionscope:Database'"),
    ],
)
def test_an_app_without_a_database_is_refused(spec: str, message: str) -> None:
    result = runner.invoke(cli, ["check", "--app", spec])
    assert result.exit_code == 1
    assert message in result.stderr
