"""``sessionscope-demo``: the migrate commands, logging, and the console script serving."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from sessionscope_demo.cli import cli, log_config

from .conftest import FAST_HASHING

runner = CliRunner()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_and_downgrade_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    migrated = runner.invoke(cli, ["migrate"], env={"DATABASE_URL": url})
    assert migrated.exit_code == 0, migrated.output
    assert "schema at revision 0001" in migrated.output
    assert {"demo_users", "demo_items"} <= _tables(url)
    down = runner.invoke(cli, ["downgrade", "base"], env={"DATABASE_URL": url})
    assert down.exit_code == 0, down.output
    assert not {"demo_users", "demo_items"} & _tables(url)


def test_migrate_an_unreachable_database_fails_without_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://postgres:hunter2secret@127.0.0.1:{port}/test"
    result = runner.invoke(cli, ["migrate"], env={"DATABASE_URL": url})
    assert result.exit_code == 1
    assert (
        "cannot migrate: cannot reach the database at postgresql+psycopg://postgres:***@127.0.0.1"
        in result.output
    )
    assert "hunter2secret" not in result.output


def test_log_config_lets_no_statement_parameters_through() -> None:
    config = log_config("debug")
    assert config["loggers"]["sessionscope_demo"]["level"] == "DEBUG"
    assert config["loggers"]["sessionscope"]["handlers"] == ["default"]
    assert config["loggers"]["aiosqlite"]["level"] == "INFO"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.server
def test_console_script_migrates_and_serves_with_two_workers(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}",
        **{key.upper(): str(value) for key, value in FAST_HASHING.items()},
    }
    script = Path(sys.executable).with_name("sessionscope-demo")
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(script), "--port", str(port), "--workers", "2"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        created = httpx.post(
            f"{base}/users",
            json={"email": "cli@example.com", "name": "Cli", "password": "12345678"},
        )
        assert created.status_code == 201
        assert httpx.get(f"{base}/users").json()["total"] == 1
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    output_text = log.read_text()
    assert "schema at revision 0001" in output_text
    assert "Started parent process" in output_text
    assert output_text.count("Started server process") == 2
