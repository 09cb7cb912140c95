"""The service reads every ``DATABASE_*`` variable sessionscope reads, with its own defaults
only where it has its own (the URL)."""

from __future__ import annotations

import pytest

from sessionscope import DatabaseConfig
from sessionscope_demo import ServiceSettings, create_app
from sessionscope_demo.settings import DEFAULT_DATABASE_URL


def test_every_database_variable_reaches_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = {
        "DATABASE_POOL_SIZE": ("pool_size", 3),
        "DATABASE_MAX_OVERFLOW": ("max_overflow", 0),
        "DATABASE_POOL_TIMEOUT": ("pool_timeout", 2.5),
        "DATABASE_PING_AFTER_IDLE": ("ping_after_idle", 0.0),
        "DATABASE_OVERFLOW_IDLE_TIMEOUT": ("overflow_idle_timeout", 7.0),
        "DATABASE_RETRY_AFTER": ("retry_after", 4),
        "DATABASE_CHECK_ON_STARTUP": ("check_on_startup", False),
    }
    for variable, (_, value) in variables.items():
        monkeypatch.setenv(variable, str(value))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = create_app().state.db.config
    assert isinstance(config, DatabaseConfig)
    assert config.url == DEFAULT_DATABASE_URL
    for field, value in variables.values():
        assert getattr(config, field) == value, field


def test_defaults_are_the_librarys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DatabaseConfig.__dataclass_fields__:
        monkeypatch.delenv(f"DATABASE_{name.upper()}", raising=False)
    config = ServiceSettings().database_config()
    library = DatabaseConfig(url=DEFAULT_DATABASE_URL)
    assert config == library
