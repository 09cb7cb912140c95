"""Which database a command works on (``--app module:attribute``, ``--url``, the environment),
and how its failures read: one line, never the password."""

from __future__ import annotations

import dataclasses
import os
import pkgutil
import sys
from typing import Any
from urllib.parse import quote_plus

from sqlalchemy import MetaData, make_url
from sqlalchemy.exc import DBAPIError

from sessionscope import ConfigurationError, Database, DatabaseSettings, database_of


class CommandError(ConfigurationError):
    """A command cannot go on; the message says why and what to do."""


def resolve(spec: str, what: str) -> Any:
    """The object named by ``module:attribute``, importable from the current directory as
    uvicorn imports an app."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as error:
        raise CommandError(
            f"cannot import the {what} {spec!r} ({type(error).__name__}: {error}); "
            "expected module:attribute, importable from the current directory"
        ) from None


def load_database(spec: str) -> Database:
    """The `Database` of the app named by ``spec`` (or the `Database` it names)."""
    target = resolve(spec, "app")
    db = target if isinstance(target, Database) else database_of(target)
    if db is None:
        raise CommandError(
            f"no sessionscope Database found in {spec!r}: build the app with "
            "FastAPI(lifespan=db.lifespan) or db.init_app(app), or name the Database itself "
            "(--app module:db)"
        )
    return db


def load_metadata(spec: str) -> MetaData:
    """The `MetaData` named by ``spec``: a `MetaData`, or a declarative base that has one."""
    target = resolve(spec, "metadata")
    metadata = target if isinstance(target, MetaData) else getattr(target, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise CommandError(
            f"{spec!r} is not SQLAlchemy MetaData nor a declarative base; "
            "expected e.g. myapp.models:Base.metadata"
        )
    return metadata


def database_for_check(url: str | None, app: str | None) -> Database:
    """``--url`` wins over the app's URL (its pool settings stay), the app over the
    environment (``DATABASE_URL`` and the other ``DATABASE_*`` variables)."""
    if app is None:
        if url is None:
            return Database.from_env()
        return Database(config=DatabaseSettings().to_config(url=url))
    db = load_database(app)
    if url is None:
        return db
    config = dataclasses.replace(db.config, url=url, sync_url=None, async_url=None)
    return Database(config=config, name=db.name)


def is_async(db: Database) -> bool:
    """Whether the database's primary URL names an async driver."""
    return bool(make_url(db.config.url).get_dialect().is_async)


def describe_failure(error: BaseException, db: Database) -> str:
    """The reason a database operation failed, in one line: the driver's own message when
    there is one, with every configured password replaced by ``***``."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else ""
    config = db.config
    for url in (config.url, config.sync_url, config.async_url):
        password = make_url(url).password if url else None
        if password:
            text = text.replace(password, "***").replace(quote_plus(password), "***")
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
