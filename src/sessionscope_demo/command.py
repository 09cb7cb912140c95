"""The ``sessionscope-demo`` console script: the service's command line, or, when the
``demo`` extra is not installed, the line that installs it.

``pip install sessionscope`` installs this script too (a wheel's scripts cannot depend on an
extra), so it must not end in an import error's traceback. Only the standard library is
imported before the check.
"""

from __future__ import annotations

import importlib.util
import sys

INSTALL_DEMO = 'pip install "sessionscope[demo]"'

DEMO_MODULES = {
    # module imported by the service: the distribution of the demo extra that provides it
    "aiosqlite": "aiosqlite",
    "alembic": "alembic",
    "argon2": "pwdlib[argon2]",
    "email_validator": "email-validator",
    "fastapi_offline": "fastapi-offline",
    "pwdlib": "pwdlib[argon2]",
    "typer": "typer",
    "uvicorn": "uvicorn[standard]",
}


def missing_distributions() -> list[str]:
    """The distributions of the demo extra whose modules cannot be imported, sorted."""
    missing = {
        distribution
        for module, distribution in DEMO_MODULES.items()
        if importlib.util.find_spec(module) is None
    }
    return sorted(missing)


def missing_extra_message(missing: list[str]) -> str:
    return (
        "sessionscope-demo runs the example service, which needs the `demo` extra; "
        f"not installed: {', '.join(missing)}.\n"
        "Install it with:\n"
        f"    {INSTALL_DEMO}\n"
        '(from a clone of the repository: pip install -e ".[demo]")'
    )


def run() -> None:
    """Entry point of the ``sessionscope-demo`` console script."""
    missing = missing_distributions()
    if missing:
        print(missing_extra_message(missing), file=sys.stderr)
        raise SystemExit(1)
    from .cli import run as run_cli

    run_cli()
