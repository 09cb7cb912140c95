"""``sessionscope-demo``: migrate the schema, then serve the app with uvicorn.

Settings come from the environment (`ServiceSettings`: ``DATABASE_URL``, ``LOG_LEVEL``...);
the command-line options win over them.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

import typer
import uvicorn
import uvicorn.config
from sqlalchemy.exc import SQLAlchemyError

from sessionscope import Database, SessionScopeError

from . import migrate
from .app import create_database
from .health import describe
from .settings import ServiceSettings

cli = typer.Typer(
    name="sessionscope-demo",
    help="The sessionscope users/items example service.",
    add_completion=False,
    no_args_is_help=False,
)

Host = Annotated[
    str | None, typer.Option(help="Interface to listen on (default: $HOST or 127.0.0.1).")
]
Port = Annotated[
    int | None, typer.Option(min=0, max=65535, help="TCP port (default: $PORT or 8000).")
]
Workers = Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")]
SkipMigrations = Annotated[
    bool, typer.Option("--skip-migrations", help="Start without applying pending migrations.")
]


@cli.callback(invoke_without_command=True)
def main(
    context: typer.Context,
    host: Host = None,
    port: Port = None,
    workers: Workers = 1,
    skip_migrations: SkipMigrations = False,
) -> None:
    """Without a command: the same as `serve`."""
    if context.invoked_subcommand is None:
        serve(host=host, port=port, workers=workers, skip_migrations=skip_migrations)


@cli.command()
def serve(
    host: Host = None,
    port: Port = None,
    workers: Workers = 1,
    skip_migrations: SkipMigrations = False,
) -> None:
    """Apply pending migrations, then serve the API (docs at /docs)."""
    settings = ServiceSettings()
    if not skip_migrations:
        _migrate(settings, "head")
    uvicorn.run(
        "sessionscope_demo.app:create_app",
        factory=True,
        host=host if host is not None else settings.host,
        port=port if port is not None else settings.port,
        workers=workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        timeout_keep_alive=settings.keep_alive_seconds(settings.database_config()),
    )


@cli.command("migrate")
def migrate_command(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the schema up to REVISION (the newest by default)."""
    _migrate(ServiceSettings(), revision)


@cli.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help='Target revision; "base" drops every table.')],
) -> None:
    """Migrate the schema down to REVISION."""
    db = create_database(ServiceSettings())
    try:
        migrate.downgrade(db, revision)
    finally:
        db.sync_engine.dispose()
    typer.echo(f"{db.url}: at revision {revision}")


def _migrate(settings: ServiceSettings, revision: str) -> None:
    db: Database = create_database(settings)
    try:
        migrate.upgrade(db, revision)
        reached = migrate.current_revision(db)
    except (SessionScopeError, SQLAlchemyError, OSError) as error:
        typer.echo(f"cannot migrate: {describe(error, db)}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.sync_engine.dispose()
    typer.echo(f"{db.url}: schema at revision {reached}")


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, extended to the service's and sessionscope's loggers.

    No logger that could print SQL parameters is let through below INFO."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for name in ("sessionscope", "sessionscope_demo"):
        config["loggers"][name] = {
            "handlers": ["default"],
            "level": level.upper(),
            "propagate": False,
        }
    # aiosqlite logs every statement with its parameters (password hashes included) at DEBUG.
    config["loggers"]["aiosqlite"] = {"level": "INFO"}
    return config


def run() -> None:
    """Run the command line (the console script reaches it through `command.run`)."""
    cli()
