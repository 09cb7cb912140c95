"""The Typer app of the ``sessionscope`` command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from alembic import command
from alembic.config import Config
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy.exc import SQLAlchemyError

from sessionscope import Database, SessionScopeError

from . import _migrations
from ._check import probe, render
from ._progress import alembic_progress
from ._target import database_for_check, describe_failure

_T = TypeVar("_T")

cli = typer.Typer(
    name="sessionscope",
    help="Check a sessionscope app's database and run its migrations.",
    add_completion=False,
    no_args_is_help=True,
    # A traceback's local variables could hold a database URL with its password.
    pretty_exceptions_show_locals=False,
)
db_cli = typer.Typer(
    help="Alembic migrations on an app's own Database (sync or async driver).",
    no_args_is_help=True,
)
cli.add_typer(db_cli, name="db")

AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        help="The FastAPI app (or its sessionscope Database) as module:attribute, "
        "e.g. myapp.main:app; imported from the current directory.",
    ),
]
ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The Alembic configuration file.")
]


def fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


@cli.command()
def check(
    url: Annotated[
        str | None,
        typer.Option(help="Database URL (default: the app's, else $DATABASE_URL)."),
    ] = None,
    app: AppOption = None,
    samples: Annotated[int, typer.Option(min=1, help="SELECT 1 round trips to time.")] = 5,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds to wait for the database.")
    ] = 10.0,
) -> None:
    """Connect to the database and print what answered; exit status 1 when it does not."""
    try:
        db = database_for_check(url, app)
        found = probe(db, samples=samples, timeout=timeout)
    except SessionScopeError as error:
        raise fail(f"sessionscope check: {error}") from None
    for line in render(found, db):
        typer.echo(line)


@db_cli.command("init")
def db_init(
    app: Annotated[
        str,
        typer.Option(
            "--app",
            help="The FastAPI app (or its Database) as module:attribute; written to the "
            "configuration file.",
        ),
    ],
    metadata: Annotated[
        str,
        typer.Option(
            help="The models' MetaData (or declarative base) as module:attribute, "
            "e.g. myapp.models:Base.metadata; compared with the database by "
            "`revision --autogenerate`."
        ),
    ],
    directory: Annotated[Path, typer.Option(help="Where the migration scripts go.")] = Path(
        "migrations"
    ),
    config: ConfigOption = Path("alembic.ini"),
) -> None:
    """Write alembic.ini and a migration environment that uses the app's Database."""
    try:
        _migrations.init(config, directory, app=app, metadata=metadata)
    except SessionScopeError as error:
        raise fail(f"sessionscope db init: {error}") from None
    typer.echo(f"wrote {config} and {directory}/ (env.py, script.py.mako, versions/)")
    typer.echo('next: sessionscope db revision --autogenerate -m "create tables"')


@db_cli.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
    autogenerate: Annotated[
        bool,
        typer.Option(help="Write the operations that bring the database to the metadata."),
    ] = False,
    app: AppOption = None,
    config: ConfigOption = Path("alembic.ini"),
) -> None:
    """Create a migration script (compared with the database when --autogenerate)."""
    alembic_config, db = _configured(config, app, "revision")
    scripts = _run(
        "revision",
        db,
        lambda: command.revision(alembic_config, message=message, autogenerate=autogenerate),
    )
    for path in _migrations.created(scripts):
        typer.echo(f"created {path}")


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    app: AppOption = None,
    config: ConfigOption = Path("alembic.ini"),
) -> None:
    """Migrate the database up to REVISION (the newest by default)."""
    alembic_config, db = _configured(config, app, "upgrade")
    _run("upgrade", db, lambda: command.upgrade(alembic_config, revision))
    _print_current(alembic_config, db)


# "-1" is a revision, not an option.
@db_cli.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(
    revision: Annotated[str, typer.Argument(help='Target revision: an id, "-1", or "base".')],
    app: AppOption = None,
    config: ConfigOption = Path("alembic.ini"),
) -> None:
    """Migrate the database down to REVISION."""
    alembic_config, db = _configured(config, app, "downgrade")
    _run("downgrade", db, lambda: command.downgrade(alembic_config, revision))
    _print_current(alembic_config, db)


@db_cli.command("current")
def db_current(app: AppOption = None, config: ConfigOption = Path("alembic.ini")) -> None:
    """Print the revision the database is at."""
    alembic_config, db = _configured(config, app, "current")
    _print_current(alembic_config, db)


@db_cli.command("purge-idempotency-keys")
def db_purge_idempotency_keys(
    app: AppOption = None, config: ConfigOption = Path("alembic.ini")
) -> None:
    """Delete the expired idempotency keys (their stored responses with them)."""
    _, db = _configured(config, app, "purge-idempotency-keys")
    deleted = _run("purge-idempotency-keys", db, lambda: _migrations.purge_idempotency_keys(db))
    typer.echo(f"{db.url}: deleted {deleted} expired idempotency key(s)")


def _configured(config: Path, app: str | None, name: str) -> tuple[Config, Database]:
    try:
        return _migrations.config(config, app)
    except SessionScopeError as error:
        raise fail(f"sessionscope db {name}: {error}") from None


def _print_current(alembic_config: Config, db: Database) -> None:
    revisions = _run("current", db, lambda: _migrations.current(alembic_config))
    typer.echo(f"{db.url}: at {revisions}")


def _run(name: str, db: Database, step: Callable[[], _T]) -> _T:
    """Run an Alembic step with its progress on stderr (see `alembic_progress`); its
    failures become one line without the password, and exit status 1."""
    try:
        with alembic_progress(name):
            return step()
    except AlembicCommandError as error:
        raise fail(f"sessionscope db {name}: {error}") from None
    except (SessionScopeError, SQLAlchemyError, OSError) as error:
        raise fail(
            f"sessionscope db {name}: database at {db.url}: {describe_failure(error, db)}"
        ) from None
