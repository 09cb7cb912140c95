"""`Database.from_env`: the configuration from ``DATABASE_*`` variables (and a ``.env`` file
when asked), without a silent fallback to a file nobody named."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ._config import DatabaseConfig, DatabaseSettings
from ._errors import ConfigurationError


def config_from_env(
    *, env_file: str | Path | None, default_url: str | None, overrides: dict[str, Any]
) -> DatabaseConfig:
    """``DATABASE_*`` variables, then ``env_file`` (variables win, as in pydantic-settings),
    then ``default_url`` for the URL. Without ``DATABASE_URL`` and ``default_url`` it is a
    `ConfigurationError`: a deployed app whose variable went missing must not start on an
    empty SQLite file."""
    # pydantic-settings' own keyword for the file; variables of the environment win over it.
    source: dict[str, Any] = {} if env_file is None else {"_env_file": env_file}
    settings = DatabaseSettings(**source)
    config = settings.to_config(**overrides)  # a misspelt option is named first
    if "url" not in settings.model_fields_set:
        if default_url is None:
            where = "in the environment" + (f" or in {str(env_file)!r}" if env_file else "")
            raise ConfigurationError(
                f"DATABASE_URL is not set {where}. Set it (e.g. "
                "DATABASE_URL=postgresql+psycopg://user:password@host/db), read it from a "
                "file with Database.from_env(env_file='.env'), or name a local fallback: "
                "Database.from_env(default_url='sqlite:///./app.db')."
            )
        config = dataclasses.replace(config, url=default_url)
    return config
