"""The idempotency key table through ``sessionscope db``: autogenerate finds it in the app's
metadata, ``upgrade`` creates it, ``purge-idempotency-keys`` deletes the expired keys."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select
from typer.testing import CliRunner

from sessionscope import idempotency_table
from sessionscope._cli import load

from .conftest import APP_MODULE, async_twin

runner = CliRunner()
cli = load()

KEYS_SOURCE = """
from sessionscope import idempotency_table

idempotency_keys = idempotency_table(Base.metadata)
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_the_key_table_is_migrated_and_purged(
    project: Path, empty_database_url: str, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (project / f"{APP_MODULE}.py").open("a") as module:
        module.write(KEYS_SOURCE)
    url = async_twin(empty_database_url) if flavour == "async" else empty_database_url
    monkeypatch.setenv("DATABASE_URL", url)
    app = f"{APP_MODULE}:app"
    code, _, err = invoke("db", "init", "--app", app, "--metadata", f"{APP_MODULE}:Base.metadata")
    assert code == 0, err
    code, _, err = invoke("db", "revision", "--autogenerate", "-m", "tables")
    assert code == 0, err
    assert "Detected added table 'sessionscope_idempotency_keys'" in err
    code, _, err = invoke("db", "upgrade")
    assert code == 0, err

    keys = idempotency_table(importlib.import_module(APP_MODULE).Base.metadata)
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)  # naive UTC, stored
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            for name, expires_at in (
                ("old", now - timedelta(hours=1)),
                ("new", now + timedelta(hours=1)),
            ):
                connection.execute(
                    insert(keys).values(
                        key_hash=name * 16,
                        route="POST /x",
                        idempotency_key=name,
                        fingerprint="0" * 64,
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
        code, out, err = invoke("db", "purge-idempotency-keys")
        assert code == 0, err
        assert out.endswith(": deleted 1 expired idempotency key(s)\n")
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(keys)) == 1
    finally:
        engine.dispose()
