"""The docs site (mkdocs.yml): its code comes from docs_src/ files, never copied.

`mkdocs build --strict` (run by CI) fails on a missing snippet or a broken link; these
checks run with the tests, without MkDocs, and run the examples that no other test runs.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([a-z_]+))?"$')


def python_blocks(page: Path) -> list[str]:
    return [body for language, body in FENCE.findall(page.read_text()) if language == "python"]


def test_the_site_builds_every_page_of_docs() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        assert f": {page.name}\n" in config, f"{page.name} is not in the nav of mkdocs.yml"


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_python_in_the_docs_is_included_from_docs_src(page: Path) -> None:
    for block in python_blocks(page):
        for line in block.splitlines():
            match = SNIPPET.match(line)
            assert match, f"{page.name}: code copied into the page instead of included: {line}"
            path, section = match.groups()
            assert path.startswith("docs_src/")
            source = (ROOT / path).read_text()
            if section is not None:
                assert f"# --8<-- [start:{section}]" in source
                assert f"# --8<-- [end:{section}]" in source


def test_the_outside_requests_example_commits_sync_and_async(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'scripts.db'}")
    app = importlib.reload(importlib.import_module("docs_src.quickstart.app"))
    example = importlib.reload(importlib.import_module("docs_src.quickstart.outside_requests"))
    app.Base.metadata.create_all(app.db.sync_engine)

    async def worker() -> None:
        try:
            await example.add_from_a_worker("from a worker")
        finally:
            await app.db.async_engine.dispose()

    try:
        example.add_from_a_script("from a script")
        anyio.run(worker)
        with app.db.transaction(readonly=True) as session:
            texts = set(session.scalars(select(app.Note.text)))
    finally:
        app.db.sync_engine.dispose()
    assert texts == {"from a script", "from a worker"}
