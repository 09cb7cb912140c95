"""docs/migrating.md kept true: a small get_db + SQLModel app (docs_src/migrating/before.py)
ported onto sessionscope (after.py) as the page says, and the page's claims about startup
handlers and the pytest plugin's fixture scopes."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import inspect
from sqlmodel import SQLModel
from sqlmodel.main import default_registry

from sessionscope import Database

pytest_plugins = ["pytester"]


def clear_sqlmodel() -> None:
    SQLModel.metadata.clear()
    default_registry.dispose()


def load(name: str) -> ModuleType:
    clear_sqlmodel()
    with warnings.catch_warnings():
        # FastAPI deprecates on_event; a migrating app still has such handlers.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(f"docs_src.migrating.{name}")
        clear_sqlmodel()
        return importlib.reload(module)


@pytest.fixture(params=["before", "after"])
def ported(
    request: pytest.FixtureRequest, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    module = load(str(request.param))
    yield module
    if hasattr(module, "engine"):
        module.SQLModel.metadata.drop_all(module.engine)
        module.engine.dispose()
    else:
        with module.db:
            module.SQLModel.metadata.drop_all(module.db.sync_engine)
    clear_sqlmodel()


def test_the_port_keeps_the_app_s_behaviour_and_fixes_the_4xx(ported: ModuleType) -> None:
    with TestClient(ported.app) as client:
        engine = ported.engine if hasattr(ported, "engine") else ported.db.sync_engine
        assert inspect(engine).has_table("migrating_teams")  # the startup handler ran
        created = client.post("/teams", params={"name": "Ada"})
        assert created.status_code == 201
        team = created.json()
        assert team == {"id": team["id"], "name": "Ada"}
        renamed = client.put(f"/teams/{team['id']}", params={"name": "Grace"})
        assert renamed.json() == {"id": team["id"], "name": "Grace"}
        assert client.put(f"/teams/{team['id']}", params={"name": "!x"}).status_code == 400
        names = [t["name"] for t in client.get("/teams").json()]
    # The get_db app committed before it refused; the port rolls the refused change back.
    assert names == (["!x"] if ported.__name__.endswith("before") else ["Grace"])


def test_lifespan_argument_skips_startup_handlers_and_init_app_keeps_them(
    database_url: str,
) -> None:
    ran: list[str] = []
    db = Database(database_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with_lifespan = FastAPI(lifespan=db.lifespan)
        with_lifespan.on_event("startup")(lambda: ran.append("lifespan="))
        with_init_app = FastAPI()
        with_init_app.on_event("startup")(lambda: ran.append("init_app"))
    db.init_app(with_init_app)
    for app in (with_lifespan, with_init_app):
        with TestClient(app):
            pass
    assert ran == ["init_app"]


# docs_src/testing/per_module/: an app factory and a test module with its own app.
PER_MODULE = Path(__file__).parents[1] / "docs_src" / "testing" / "per_module"
APP_MODULE = (PER_MODULE / "apps.py").read_text()
PER_MODULE_OVERRIDES = (PER_MODULE / "test_a.py").read_text()

ONLY_THE_APP = """
import pytest
from apps import make_app

@pytest.fixture(scope="module")
def sessionscope_app():
    return make_app("c")

def test_its_own_app(sessionscope_client):
    assert sessionscope_client.get("/label").json() == "c"
"""


def test_an_app_per_test_module_overrides_three_fixtures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    other_label = PER_MODULE_OVERRIDES.replace('"a"', '"b"')
    assert other_label.count('"b"') == 2  # the app's label and the test's expectation
    pytester.makepyfile(apps=APP_MODULE)
    pytester.makepyfile(test_a=PER_MODULE_OVERRIDES, test_b=other_label)
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_overriding_only_the_app_per_module_meets_scope_mismatch(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    pytester.makepyfile(apps=APP_MODULE, test_c=ONLY_THE_APP)
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ScopeMismatch*"])
