"""The installed ``sessionscope`` console script, as real processes, on a fresh app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import APP_TABLES, closed_port, tables

SCRIPT = Path(sys.executable).with_name("sessionscope")
SERVER_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def sessionscope(*args: str) -> subprocess.CompletedProcess[str]:
    # The project fixture made the app's directory the current one and set DATABASE_URL.
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_migrations_of_a_fresh_app(project: Path, empty_database_url: str) -> None:
    init = sessionscope(
        "db", "init", "--app", "cli_notes_app:app", "--metadata", "cli_notes_app:Base"
    )
    assert init.returncode == 0, init.stderr
    revision = sessionscope("db", "revision", "--autogenerate", "-m", "create tables")
    assert revision.returncode == 0, revision.stderr
    assert "Detected added table 'cli_books'" in revision.stderr

    upgrade = sessionscope("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert tables(empty_database_url) >= APP_TABLES
    current = sessionscope("db", "current")
    assert current.returncode == 0, current.stderr
    assert current.stdout.endswith(" (head)\n")

    downgrade = sessionscope("db", "downgrade", "base")
    assert downgrade.returncode == 0, downgrade.stderr
    assert not APP_TABLES & tables(empty_database_url)
    assert sessionscope("db", "current").stdout.endswith(": at base\n")


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_check_exits_0_on_a_real_server(project: Path) -> None:
    check = sessionscope("check")
    assert check.returncode == 0, check.stderr
    assert "latency   " in check.stdout


def test_check_exits_1_for_an_unreachable_database() -> None:
    url = f"postgresql+psycopg://postgres:hunter2secret@127.0.0.1:{closed_port()}/app"
    check = subprocess.run(
        [str(SCRIPT), "check", "--url", url], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 1
    assert check.stdout == ""
    assert check.stderr.startswith(
        "sessionscope check: cannot reach the database at "
        "postgresql+psycopg://postgres:***@127.0.0.1:"
    )
    assert "hunter2secret" not in check.stderr
