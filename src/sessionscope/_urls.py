"""Database URLs as people paste them: hosting providers' ``postgres://``, URLs without a
driver, unknown driver names. Each one either becomes the URL sessionscope serves or fails
with an error naming the URL form and the extra that installs its drivers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from ._errors import ConfigurationError

# backend -> (sync driver, async driver, extra that installs them)
DRIVER_PAIRS: dict[str, tuple[str, str, str]] = {
    "sqlite": ("pysqlite", "aiosqlite", "sqlite"),
    "postgresql": ("psycopg", "asyncpg", "postgres"),
    "mysql": ("pymysql", "aiomysql", "mysql"),
    "mariadb": ("pymysql", "aiomysql", "mysql"),
}

_BACKEND_ALIASES = {"postgres": "postgresql"}
"""Backend names SQLAlchemy does not know but URLs carry: Heroku, Render and Fly hand out
``postgres://`` URLs."""

_FORMS = (
    "'postgresql+psycopg://user:password@host/db' (sync) or 'postgresql+asyncpg://...' "
    '(async), from pip install "sessionscope[postgres]"; '
    "'mysql+pymysql://...' or 'mysql+aiomysql://...' (MySQL and MariaDB), from "
    'pip install "sessionscope[mysql]"; '
    "'sqlite:///./app.db' or 'sqlite+aiosqlite:///./app.db', the async one from "
    'pip install "sessionscope[sqlite]"'
)


def _masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def normalize_url(url: URL) -> URL:
    """``url`` with the backend's canonical name and, when it names no driver, sessionscope's
    sync driver for that backend: ``postgres://`` and ``postgresql://`` become
    ``postgresql+psycopg://``, ``mysql://`` becomes ``mysql+pymysql://`` (SQLAlchemy's own
    defaults, psycopg2 and mysqlclient, are not what sessionscope's extras install).
    An unknown backend or driver raises `ConfigurationError` naming the URL forms."""
    backend, plus, driver = url.drivername.partition("+")
    backend = _BACKEND_ALIASES.get(backend, backend)
    pair = DRIVER_PAIRS.get(backend)
    if not plus and pair is not None and backend != "sqlite":
        # SQLite's default driver is already sessionscope's sync one.
        driver = pair[0]
    drivername = f"{backend}+{driver}" if driver else backend
    if drivername != url.drivername:
        url = url.set(drivername=drivername)
    try:
        url.get_dialect()
    except sa_exc.NoSuchModuleError:
        raise _unknown(url, backend, driver) from None
    return url


def _unknown(url: URL, backend: str, driver: str) -> ConfigurationError:
    pair = DRIVER_PAIRS.get(backend)
    if pair is None:
        return ConfigurationError(
            f"unknown database {backend!r} in the URL {_masked(url)}; sessionscope serves "
            f"PostgreSQL, MySQL/MariaDB and SQLite. Write the URL as {_FORMS}."
        )
    sync_driver, async_driver, extra = pair
    return ConfigurationError(
        f"unknown driver {driver!r} for {backend} in the URL {_masked(url)}; write it as "
        f"'{backend}+{sync_driver}://...' (sync) or '{backend}+{async_driver}://...' (async), "
        f'whose drivers pip install "sessionscope[{extra}]" installs'
    )


def missing_driver_message(url: URL, module: str) -> str:
    """Why the engine for ``url`` cannot load its driver (``module``), and the fix: the extra
    when it installs that driver, else the URL form whose driver the extra installs."""
    backend = url.get_backend_name()
    driver = url.get_driver_name()
    head = f"the driver for {url.drivername!r} ({_masked(url)}) is not installed ({module})"
    pair = DRIVER_PAIRS.get(backend)
    if pair is None:
        return f"{head}; fix: install the DBAPI driver for {url.drivername!r}"
    sync_driver, async_driver, extra = pair
    install = f'pip install "sessionscope[{extra}]"'
    if driver in (sync_driver, async_driver):
        return f"{head}; fix: {install}"
    return (
        f"{head}. sessionscope's extra installs {sync_driver} and {async_driver}: write the URL "
        f"as '{backend}+{sync_driver}://...' or '{backend}+{async_driver}://...' and run "
        f"{install}; or install the {driver!r} driver yourself"
    )


def describe_flavours(sync_url: URL, async_url: URL, missing: Mapping[Any, object]) -> str:
    """One line for the start-up log: the URL in use (password masked) and the driver each
    flavour of session goes through, e.g. that a ``postgresql+psycopg://`` URL serves async
    sessions through asyncpg. ``missing``: flavours left out, with the reason."""
    parts = []
    for flavour, url in (("sync", sync_url), ("async", async_url)):
        if flavour in missing:
            parts.append(f"{flavour} sessions unavailable ({missing[flavour]})")
            continue
        where = "" if url.set(drivername=sync_url.drivername) == sync_url else f" at {_masked(url)}"
        parts.append(f"{flavour} sessions through {url.get_driver_name()}{where}")
    return (
        f"database {_masked(sync_url.set(drivername=sync_url.get_backend_name()))}: "
        + ", ".join(parts)
    )
