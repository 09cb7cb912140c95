"""The per-app runtime: one `Database` on several apps, engines made and checked at start-up,
typed options, and one home for the engine decision."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from sessionscope import (
    AsyncDbSession,
    ConfigurationError,
    Database,
    DatabaseConfig,
    DatabaseSettings,
    DatabaseUnavailableError,
    DbSession,
)
from sessionscope._config import DatabaseOptions

SRC = Path(__file__).parent.parent / "src" / "sessionscope"


def _app(db: Database, flavour: str, engines: list[Any]) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)
    if flavour == "sync":

        @app.get("/")
        def read_sync(session: DbSession) -> int:
            engines.append(db.sync_engine)
            return int(session.execute(text("SELECT 1")).scalar_one())

    else:

        @app.get("/")
        async def read_async(session: AsyncDbSession) -> int:
            engines.append(db.async_engine)
            return int((await session.execute(text("SELECT 1"))).scalar_one())

    return app


def _pooled(engine: Engine | AsyncEngine) -> int:
    pool = engine.pool
    return int(pool.checkedin())  # type: ignore[attr-defined]


@pytest.mark.parametrize("first_to_stop", ["a", "b"])
def test_one_database_serves_two_apps_whose_lifespans_overlap(
    database_url: str, flavour: str, first_to_stop: str
) -> None:
    db = Database(database_url)
    engines: dict[str, list[Any]] = {"a": [], "b": []}
    apps = {name: _app(db, flavour, engines[name]) for name in ("a", "b")}
    last = "b" if first_to_stop == "a" else "a"
    with ExitStack() as last_stack:
        last_client = last_stack.enter_context(TestClient(apps[last]))
        with TestClient(apps[first_to_stop]) as first_client:
            assert first_client.get("/").json() == 1
            assert last_client.get("/").json() == 1
        # The first app's lifespan ended: its engines are disposed of, the other app's are not.
        first_engine = engines[first_to_stop][0]
        last_engine = engines[last][0]
        assert first_engine is not last_engine
        assert _pooled(first_engine) == 0
        for _ in range(3):
            assert last_client.get("/").json() == 1
        assert all(engine is last_engine for engine in engines[last])
        assert _pooled(last_engine) >= 1
    assert _pooled(last_engine) == 0


def test_each_lifespan_gets_fresh_engines_and_scripts_their_own(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'own.db'}")
    engines: list[Any] = []
    app = _app(db, "sync", engines)
    for _ in range(2):
        with TestClient(app) as client:
            client.get("/")
    assert engines[0] is not engines[1]
    with db.transaction() as session:
        session.execute(text("SELECT 1"))
    script_engine = db.sync_engine
    assert script_engine not in engines
    assert _pooled(script_engine) == 1
    db.close()
    assert _pooled(script_engine) == 0


@pytest.mark.parametrize("primary", ["sync", "async"])
def test_pool_options_a_pool_class_refuses_stop_startup(tmp_path: Path, primary: str) -> None:
    driver = "sqlite" if primary == "sync" else "sqlite+aiosqlite"
    db = Database(
        f"{driver}:///{tmp_path / 'pool.db'}",
        engine_options={"poolclass": NullPool, "pool_size": 3},
    )
    app = FastAPI(lifespan=db.lifespan)
    with pytest.raises(ConfigurationError, match="refused the engine options"), TestClient(app):
        pass


def test_a_misconfigured_async_flavour_stops_startup_of_a_sync_app(tmp_path: Path) -> None:
    # The app's own flavour is fine; the other one (used by `async with db.transaction()`
    # in its background work) is not an async driver.
    url = f"sqlite:///{tmp_path / 'flavour.db'}"
    db = Database(url, async_url=url)
    app = _app(db, "sync", [])
    with pytest.raises(ConfigurationError, match="not an async driver"), TestClient(app):
        pass


def test_an_unreachable_async_flavour_stops_startup(tmp_path: Path) -> None:
    db = Database(
        f"sqlite:///{tmp_path / 'reach.db'}",
        async_url="postgresql+asyncpg://app:s3cr3t-pw@127.0.0.1:9/app",
    )
    app = _app(db, "sync", [])
    with pytest.raises(DatabaseUnavailableError) as caught, TestClient(app):
        pass
    assert "127.0.0.1:9" in str(caught.value)
    assert "s3cr3t-pw" not in str(caught.value)


def test_a_failed_start_up_leaves_no_connection_open(tmp_path: Path) -> None:
    # The sync flavour answers its check (a connection goes to its pool), the async one does
    # not: the runtime that never started disposes of what it opened.
    db = Database(
        f"sqlite:///{tmp_path / 'half.db'}",
        async_url="postgresql+asyncpg://app:pw@127.0.0.1:9/app",
    )
    with pytest.raises(DatabaseUnavailableError):
        anyio.run(db.startup)
    assert _pooled(db.sync_engine) == 0
    db.close()


def test_a_misspelt_option_names_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"'pool_sise'.*pool_size") as caught:
        Database("sqlite://", pool_sise=3)  # type: ignore[call-arg]
    assert "max_overflow" in str(caught.value)
    with pytest.raises(ConfigurationError, match="pool_sise"):
        Database.from_env(pool_sise=3)  # type: ignore[call-arg]


def test_options_and_settings_follow_the_config_fields() -> None:
    fields = DatabaseConfig.__dataclass_fields__
    assert set(DatabaseOptions.__annotations__) == set(fields) - {"url"}
    settings = DatabaseSettings.model_fields
    # Every field but the mapping of engine options can come from the environment.
    assert set(settings) == set(fields) - {"engine_options"}
    for name, settings_field in settings.items():
        default = settings_field.default
        default = default.get_secret_value() if name == "url" else default
        assert default == fields[name].default, name


def test_settings_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./elsewhere.db")
    monkeypatch.setenv("DATABASE_POOL_TIMEOUT", "2.5")
    monkeypatch.setenv("DATABASE_PING_AFTER_IDLE", "0")
    config = Database.from_env(pool_size=7).config
    assert (config.url, config.pool_timeout, config.ping_after_idle, config.pool_size) == (
        "sqlite:///./elsewhere.db",
        2.5,
        0,
        7,
    )


# -- one home for the decision ----------------------------------------------------------------


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.glob("*.py")):
        yield path.stem, ast.parse(path.read_text(), str(path))


def _top_level_private_imports(tree: ast.Module) -> set[str]:
    """The package's private modules a module imports when it is imported (imports inside
    functions run later and cannot make a cycle at import time)."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks
            test = node.test
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                for inner in node.body:
                    if isinstance(inner, ast.ImportFrom) and inner.level == 1 and inner.module:
                        found.add(f"{inner.module} (TYPE_CHECKING)")
    return found


def test_private_modules_import_without_a_cycle() -> None:
    graph = {name: _top_level_private_imports(tree) for name, tree in _modules()}
    assert not any("TYPE_CHECKING" in imported for deps in graph.values() for imported in deps), {
        name: deps for name, deps in graph.items() if any("TYPE_CHECKING" in d for d in deps)
    }
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        assert name not in visiting, f"import cycle: {' -> '.join([*visiting, name])}"
        visiting.append(name)
        for dependency in sorted(graph.get(name, ())):
            visit(dependency)
        visiting.pop()
        order.append(name)

    for name in graph:
        visit(name)


_IMPORT_EACH_FIRST = """
import importlib, importlib.util, sys
src, names = sys.argv[1], sys.argv[2:]
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] == "sessionscope"]:
        del sys.modules[loaded]
    spec = importlib.util.spec_from_file_location(
        "sessionscope", src + "/__init__.py", submodule_search_locations=[src]
    )
    sys.modules["sessionscope"] = importlib.util.module_from_spec(spec)  # __init__ not run
    importlib.import_module("sessionscope." + name)
"""


def test_each_private_module_imports_first() -> None:
    # Each module imported before anything else of the package: a cycle would fail here.
    modules = sorted(path.stem for path in SRC.glob("_*.py") if path.stem != "__init__")
    subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FIRST, str(SRC), *modules], check=True, timeout=120
    )


def _own_private_names(tree: ast.Module) -> set[str]:
    """Private attributes a module defines: its classes' methods and ``self._x`` fields."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id == "self":
                names.add(node.attr)
    return names


def test_no_module_reaches_into_private_attributes_of_another_module() -> None:
    # `self._x`, `cls._x`, `super()._x` and a module's own private names are its own
    # business; any other leading-underscore attribute (dunders aside) belongs to another
    # module.
    offences = []
    for name, tree in _modules():
        own = _own_private_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__"):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                continue
            if attr in own:
                continue
            offences.append(f"{name}.py:{node.lineno}: .{attr}")
    assert offences == []
