"""``sessionscope db``: Alembic on the app's own Database, through Typer's test runner, on
SQLite, PostgreSQL and MariaDB, with the sync and the async driver."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import make_url
from typer.testing import CliRunner

from sessionscope._cli import load

from .conftest import APP_MODULE, APP_TABLES, async_twin, closed_port, tables

runner = CliRunner()
cli = load()
APP = f"{APP_MODULE}:app"
METADATA = f"{APP_MODULE}:Base.metadata"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def init() -> None:
    code, out, err = invoke("db", "init", "--app", APP, "--metadata", METADATA)
    assert code == 0, err
    assert "wrote alembic.ini and migrations/" in out


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_init_autogenerate_upgrade_current_downgrade(
    project: Path, empty_database_url: str, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = async_twin(empty_database_url) if flavour == "async" else empty_database_url
    monkeypatch.setenv("DATABASE_URL", url)
    init()
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(project / "alembic.ini")
    assert ini["sessionscope"]["app"] == APP
    assert ini["sessionscope"]["metadata"] == METADATA
    assert (project / "migrations" / "env.py").is_file()

    code, out, err = invoke("db", "revision", "--autogenerate", "-m", "create tables")
    assert code == 0, err
    assert "Detected added table 'cli_authors'" in err
    (script,) = (project / "migrations" / "versions").glob("*_create_tables.py")
    assert "op.create_table('cli_books'" in script.read_text().replace('"', "'")
    revision = script.name.split("_")[0]
    assert out == f"created migrations/versions/{script.name}\n"
    assert not APP_TABLES & tables(empty_database_url)  # autogenerate only compares

    code, out, err = invoke("db", "upgrade")
    assert code == 0, err
    assert f"Running upgrade  -> {revision}, create tables" in err
    assert out.endswith(f": at {revision} (head)\n")
    assert tables(empty_database_url) >= APP_TABLES | {"alembic_version"}

    code, out, err = invoke("db", "current")
    assert code == 0, err
    assert out == f"{make_url(url).render_as_string(hide_password=True)}: at {revision} (head)\n"

    code, out, err = invoke("db", "downgrade", "base")
    assert code == 0, err
    assert f"Running downgrade {revision} -> , create tables" in err
    assert out.endswith(": at base\n")
    assert not APP_TABLES & tables(empty_database_url)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_async_url_migrates_through_the_async_driver(project: Path) -> None:
    # The Database's sync URL leads nowhere: the migrations can only have run on the async
    # driver's connection.
    database = project / "async.db"
    (project / "async_only.py").write_text(
        "from sessionscope import Database\n"
        f"from {APP_MODULE} import Base\n"
        f"db = Database('sqlite+aiosqlite:///{database}', "
        f"sync_url='sqlite:///{project / 'missing' / 'sync.db'}')\n"
    )
    code, _, err = invoke("db", "init", "--app", "async_only:db", "--metadata", "async_only:Base")
    assert code == 0, err
    assert invoke("db", "revision", "--autogenerate", "-m", "tables")[0] == 0
    code, out, err = invoke("db", "upgrade")
    assert code == 0, err
    assert tables(f"sqlite:///{database}") >= APP_TABLES
    assert out.startswith(f"sqlite+aiosqlite:///{database}: at ")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_terminal_sees_the_migrations_counted(
    project: Path, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    init()
    for message in ("create authors", "add a column"):
        assert invoke("db", "revision", "-m", message)[0] == 0
    # What Rich takes for an interactive terminal, on the runner's captured stderr.
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    code, out, err = invoke("db", "upgrade")
    assert code == 0, err
    assert "upgrade: 2 migrations run" in err
    assert err.count("Running upgrade") == 2
    assert out.endswith("(head)\n")
    code, _, err = invoke("db", "downgrade", "-1")
    assert code == 0, err
    assert "downgrade: 1 migration run" in err
    # No progress line for a command that runs no migration.
    code, _, err = invoke("db", "current")
    assert code == 0, err
    assert "migration" not in err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_app_option_overrides_the_configuration(project: Path, empty_database_url: str) -> None:
    init()
    (project / "other_app.py").write_text(
        f"from sessionscope import Database\ndb = Database({empty_database_url!r})\n"
    )
    assert invoke("db", "revision", "--autogenerate", "-m", "create tables")[0] == 0
    code, _, err = invoke("db", "upgrade", "--app", "other_app:db")
    assert code == 0, err
    assert tables(empty_database_url) >= APP_TABLES
    code, _, err = invoke("db", "current", "--app", "other_app:missing")
    assert code == 1
    assert "cannot import the app 'other_app:missing' (AttributeError" in err


def test_plain_alembic_runs_the_environment_online_and_offline(
    project: Path, empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    init()
    assert invoke("db", "revision", "--autogenerate", "-m", "create tables")[0] == 0
    config = Config("alembic.ini")
    command.upgrade(config, "head", sql=True)
    assert "CREATE TABLE cli_authors" in capsys.readouterr().out
    assert not APP_TABLES & tables(empty_database_url)
    command.upgrade(config, "head")
    assert tables(empty_database_url) >= APP_TABLES


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", f"{APP_MODULE}:Base"], f"no sessionscope Database found in '{APP_MODULE}:Base'"),
        (["--app", "no_such_module:app"], "cannot import the app 'no_such_module:app'"),
        (["--metadata", f"{APP_MODULE}:db"], "is not SQLAlchemy MetaData nor a declarative base"),
    ],
)
def test_init_refuses_what_it_cannot_use(project: Path, args: list[str], message: str) -> None:
    options = {"--app": APP, "--metadata": METADATA}
    options.update(zip(args[::2], args[1::2], strict=True))
    code, _, err = invoke("db", "init", *(part for pair in options.items() for part in pair))
    assert code == 1
    assert message in err
    assert not (project / "alembic.ini").exists()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_init_does_not_overwrite(project: Path) -> None:
    init()
    code, _, err = invoke("db", "init", "--app", APP, "--metadata", METADATA)
    assert code == 1
    assert "alembic.ini exists already" in err
    code, _, err = invoke(
        "db", "init", "--app", APP, "--metadata", METADATA, "--config", "other.ini"
    )
    assert code == 1
    assert "migrations exists and is not empty" in err
    code, _, err = invoke(
        "db",
        "init",
        "--app",
        APP,
        "--metadata",
        METADATA,
        "--config",
        "other.ini",
        "--directory",
        "db/migrations",
    )
    assert code == 0, err
    assert "script_location = %(here)s/db/migrations" in (project / "other.ini").read_text()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_commands_without_a_configuration_say_how_to_make_one(project: Path) -> None:
    code, _, err = invoke("db", "upgrade", "--app", APP)
    assert code == 1
    assert "alembic.ini not found: run `sessionscope db init --app module:app" in err
    (project / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    code, _, err = invoke("db", "current")
    assert code == 1
    assert "name the app with --app module:attribute" in err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_alembic_errors_are_one_line(project: Path) -> None:
    init()
    code, _, err = invoke("db", "downgrade", "nonexistent")
    assert code == 1
    assert err.startswith("sessionscope db downgrade: ")
    assert "nonexistent" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_environment_names_a_missing_metadata_setting(project: Path) -> None:
    init()
    ini = project / "alembic.ini"
    ini.write_text(ini.read_text().replace(f"metadata = {METADATA}\n", ""))
    code, _, err = invoke("db", "revision", "--autogenerate", "-m", "x")
    assert code == 1
    assert "set `metadata = module:attribute` in the [sessionscope] section" in err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unreachable_database_fails_without_the_password(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql+psycopg://postgres:hunter2secret@127.0.0.1:{closed_port()}/test"
    monkeypatch.setenv("DATABASE_URL", url)
    init()  # connects nothing
    code, out, err = invoke("db", "upgrade")
    assert code == 1
    assert err.startswith(
        "sessionscope db upgrade: database at postgresql+psycopg://postgres:***@127.0.0.1:"
    )
    assert "OperationalError" in err
    assert "hunter2secret" not in out + err
