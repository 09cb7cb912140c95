"""``sessionscope-demo``: the migrate commands, logging, and the console script serving."""

from __future__ import annotations

import json
import os
import shutil
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
CURL_SESSION = Path(__file__).resolve().parents[2] / "docs_src" / "service" / "curl_session.sh"
SERVICE_DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"


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
    assert "schema at revision 0003" in migrated.output
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
def test_console_script_serves_the_documented_curl_session_with_two_workers(
    tmp_path: Path,
) -> None:
    # Two worker processes cannot join the test's rolled-back transaction (it lives on one
    # connection of this process), so this test commits for real, into a SQLite file of its
    # own that goes with tmp_path; the shared schema of the other tests is never touched.
    assert shutil.which("curl"), "the documented session needs curl"
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}",
        **{key.upper(): str(value) for key, value in FAST_HASHING.items()},
        # A shed request is told to come back after 1 s: the connection is kept 6 s.
        "DATABASE_POOL_TIMEOUT": "0.5",
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
                ready = httpx.get(f"{base}/readyz", timeout=2).status_code == 200
                if ready and log.read_text().count("Application startup complete") == 2:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        session = subprocess.run(
            ["bash", str(CURL_SESSION)],
            env={**os.environ, "BASE": base},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        user, item, listing = (json.loads(line) for line in session.stdout.splitlines())
        assert (user["id"], user["email"]) == (1, "ada@example.com")
        assert (item["owner_id"], item["name"]) == (1, "Notebook")
        assert (listing["items"], listing["total"]) == ([item], 1)
        _kept_alive_past_the_longest_retry_after(port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    output_text = log.read_text()
    assert "schema at revision 0003" in output_text
    assert "Started parent process" in output_text
    assert output_text.count("Started server process") == 2


def _kept_alive_past_the_longest_retry_after(port: int) -> None:
    """A client that waits the ``Retry-After`` it was given finds its kept-alive connection
    open: uvicorn's own 5 s would close it just as such a client comes back."""
    request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for attempt in range(2):
            if attempt:
                time.sleep(5.5)
            sock.sendall(request)
            status = reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            reader.read(length)
        reader.close()


def test_the_doc_shows_the_commands_of_the_curl_session() -> None:
    script = CURL_SESSION.read_text()
    commands = script[script.index("\ncurl") :].replace("echo\n", "").strip()
    doc = "\n".join(
        line for line in SERVICE_DOC.read_text().splitlines() if not line.startswith("# {")
    )
    assert commands in doc
