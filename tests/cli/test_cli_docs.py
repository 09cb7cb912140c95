"""The session of docs/operations.md runs, and the page shows exactly its commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SESSION = ROOT / "docs_src" / "operations" / "cli_session.sh"
PAGE = ROOT / "docs" / "operations.md"
APP = "docs_src.quickstart.app"


def test_the_documented_session_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}",
    }
    session = subprocess.run(
        ["bash", str(SESSION)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert session.returncode == 0, session.stderr
    lines = session.stdout.splitlines()
    assert lines[0] == f"database  sqlite+aiosqlite:///{tmp_path / 'notes.db'}"
    (script,) = (tmp_path / "migrations" / "versions").glob("*_create_notes.py")
    revision = script.name.split("_")[0]
    assert f"created migrations/versions/{script.name}" in lines
    assert lines[-3:] == [
        f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}: at {revision} (head)",
        f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}: at {revision} (head)",
        f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}: at base",
    ]
    assert session.stderr.splitlines() == [
        "Detected added table 'notes'",
        f"Running upgrade  -> {revision}, create notes",
        f"Running downgrade {revision} -> , create notes",
    ]


def test_the_page_shows_the_sessions_commands() -> None:
    script = SESSION.read_text().replace('"$APP', APP).replace('"', "")
    commands = [line for line in script.splitlines() if line.startswith("sessionscope ")]
    shown = [
        line[2:].replace('"', "")
        for line in PAGE.read_text().splitlines()
        if line.startswith("$ sessionscope ")
    ]
    assert [command for command in shown if " --url " not in command] == commands
