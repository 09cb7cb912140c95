"""Scripts end cleanly: `with db:` / `async with db:` close every connection they opened.

Each documented script runs in a fresh interpreter with ``-W error::ResourceWarning``, on the
interpreter of the test run and on every one named in ``SESSIONSCOPE_TEST_EXTRA_PYTHONS``
(``os.pathsep``-separated, each with sessionscope and aiosqlite installed; Python 3.13 and
later report a SQLite connection left to the garbage collector as a ResourceWarning). On
every Python, the script's SQLite write-ahead log must be gone right after the block: SQLite
removes it when the last connection closes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["docs_src.scripts.notes_script", "docs_src.scripts.notes_async_script"]

_EXTRA = [p for p in os.environ.get("SESSIONSCOPE_TEST_EXTRA_PYTHONS", "").split(os.pathsep) if p]
INTERPRETERS = [
    pytest.param(sys.executable, id="this-python"),
    *(pytest.param(path, id=f"extra-python-{n}") for n, path in enumerate(_EXTRA, 1)),
]

RUN_THEN_CHECK = """
import asyncio, inspect, os, sys
import {module} as script
result = script.main()
if inspect.iscoroutine(result):
    asyncio.run(result)
wal = sys.argv[1] + "-wal"
assert not os.path.exists(wal), "a connection is still open: " + wal
print("clean end")
"""


@pytest.mark.parametrize("module", SCRIPTS)
@pytest.mark.parametrize("python", INTERPRETERS)
def test_documented_script_leaves_no_connection_open(
    module: str, python: str, tmp_path: Path
) -> None:
    database = tmp_path / "notes.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "PYTHONPATH": str(ROOT)}
    code = RUN_THEN_CHECK.format(module=module)
    completed = subprocess.run(
        [python, "-W", "error::ResourceWarning", "-c", code, str(database)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "ResourceWarning" not in completed.stderr
    assert completed.stdout.splitlines() == ["1 notes", "clean end"]
