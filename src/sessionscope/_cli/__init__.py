"""The ``sessionscope`` command (extra ``cli``): ``check`` and the ``db`` migration commands.

Importing `sessionscope` never imports this package, so Typer and Alembic stay optional.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from sessionscope import MissingDriverError

if TYPE_CHECKING:
    import typer

INSTALL_LINE = 'pip install "sessionscope[cli]"'


def load() -> typer.Typer:
    """The command's Typer app. Raises `MissingDriverError` (an ``ImportError``) with the
    pip line when the ``cli`` extra is not installed."""
    try:
        import alembic  # noqa: F401
        import typer  # noqa: F401
    except ImportError as error:
        missing = f"{error.name} is not installed" if error.name else str(error)
        raise MissingDriverError(
            f"the sessionscope command needs the extra `cli` ({missing}); fix: {INSTALL_LINE}"
        ) from error
    from ._app import cli

    return cli


def main() -> None:
    """Entry point of the ``sessionscope`` console script."""
    try:
        cli = load()
    except MissingDriverError as error:
        sys.exit(f"sessionscope: {error}")
    cli()
