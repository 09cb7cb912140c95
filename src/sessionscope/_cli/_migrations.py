"""``sessionscope db``: Alembic, configured by an alembic.ini that ``db init`` writes, on
the app's own `Database` (the env.py template in ``alembic_template/`` connects)."""

from __future__ import annotations

import asyncio
import os
import sys
from argparse import Namespace
from importlib.resources import files
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import make_url

from sessionscope import Database, delete_expired_idempotency_keys

from ._target import CommandError, load_database, load_metadata

SECTION = "sessionscope"
TEMPLATE_FILES = ("env.py", "script.py.mako")

INI_TEMPLATE = """\
# Written by `sessionscope db init`; `alembic ...` reads it as well.
[alembic]
script_location = %(here)s/{script_location}
prepend_sys_path = .
path_separator = os

[sessionscope]
# The app whose sessionscope Database the migrations run on (its URL and driver), as
# module:attribute; `sessionscope db ... --app` overrides it.
app = {app}
# What `sessionscope db revision --autogenerate` compares the database with.
metadata = {metadata}
"""


def init(ini: Path, directory: Path, *, app: str, metadata: str) -> None:
    """Write ``ini`` and the migration environment in ``directory``, after checking that
    ``app`` has a `Database` and ``metadata`` is SQLAlchemy metadata."""
    load_database(app)
    load_metadata(metadata)
    if ini.exists():
        raise CommandError(f"{ini} exists already; pass --config to write another file")
    if directory.exists() and any(directory.iterdir()):
        raise CommandError(f"{directory} exists and is not empty; pass another --directory")
    (directory / "versions").mkdir(parents=True, exist_ok=True)
    template = files(__package__).joinpath("alembic_template")
    for name in TEMPLATE_FILES:
        (directory / name).write_bytes(template.joinpath(name).read_bytes())
    location = Path(os.path.relpath(directory.resolve(), ini.resolve().parent)).as_posix()
    ini.write_text(INI_TEMPLATE.format(script_location=location, app=app, metadata=metadata))


def config(ini: Path, app: str | None) -> tuple[Config, Database]:
    """The Alembic configuration of ``ini``, with ``app`` (when given) in place of the
    file's, and the app's `Database`."""
    if not ini.is_file():
        raise CommandError(
            f"{ini} not found: run `sessionscope db init --app module:app "
            "--metadata module:Base.metadata` first, or pass --config"
        )
    # quiet: the commands say what they did in their own words (paths relative, URL masked).
    options = Namespace(quiet=True, x=None)
    alembic_config = Config(str(ini), stdout=sys.stdout, cmd_opts=options)
    if app is not None:
        alembic_config.set_section_option(SECTION, "app", app)
    has_section = alembic_config.file_config.has_section(SECTION)
    spec = alembic_config.get_section_option(SECTION, "app") if has_section else None
    if not spec:
        raise CommandError(
            f"name the app with --app module:attribute, or as `app = ...` in the "
            f"[{SECTION}] section of {ini}"
        )
    return alembic_config, load_database(spec)


def current(alembic_config: Config) -> str:
    """The revisions the database is at, as Alembic names them (``ae10 (head)``), or
    ``base`` when none is applied."""
    script = ScriptDirectory.from_config(alembic_config)
    heads: list[str] = []

    def collect(_revision: object, context: MigrationContext) -> list[object]:
        heads.extend(context.get_current_heads())
        return []

    with EnvironmentContext(alembic_config, script, fn=collect, dont_mutate=True):
        script.run_env()
    found = (script.get_revision(head) for head in heads)
    return ", ".join(revision.cmd_format(verbose=False) for revision in found if revision) or (
        "base"
    )


def purge_idempotency_keys(db: Database) -> int:
    """Delete the expired idempotency keys with the app's own driver; returns how many."""
    if make_url(db.config.url).get_dialect().is_async:

        async def purge() -> int:
            try:
                async with db.async_engine.begin() as connection:
                    return await connection.run_sync(delete_expired_idempotency_keys)
            finally:
                await db.shutdown()

        return asyncio.run(purge())
    try:
        with db.sync_engine.begin() as connection:
            return delete_expired_idempotency_keys(connection)
    finally:
        db.sync_engine.dispose()


def created(scripts: Script | list[Script | None] | None) -> list[str]:
    """The paths of the migration scripts `alembic.command.revision` wrote, relative to the
    current directory when they are under it."""
    written = scripts if isinstance(scripts, list) else [scripts]
    return [_relative(Path(script.path)) for script in written if script is not None]


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
