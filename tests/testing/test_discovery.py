"""How the plugin finds the app's database and the session flavour its routes need, and how
it is configured.

No ``from __future__ import annotations`` here: FastAPI must resolve the annotations of
routes defined inside functions."""

from typing import Annotated

import inprocess  # noqa: F401
import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy.orm import Session

from sessionscope import AsyncDbSession, Database, DbSession
from sessionscope.testing import app_flavour, database_of, session_flavours

pytest_plugins = ["pytester"]


def test_database_of_an_app_built_with_the_lifespan() -> None:
    db = Database("sqlite://")
    assert database_of(FastAPI(lifespan=db.lifespan)) is db


def test_database_of_an_app_with_init_app() -> None:
    db, other = Database("sqlite://"), Database("sqlite://", name="other")
    app = FastAPI()
    db.init_app(app)
    other.init_app(app)
    assert database_of(app) is db


def test_database_of_an_app_without_one() -> None:
    assert database_of(FastAPI()) is None


def test_database_of_an_app_whose_routes_are_in_included_routers() -> None:
    """FastAPI wraps the app's lifespan to merge it with each included router's."""
    db = Database("sqlite://")
    app = FastAPI(lifespan=db.lifespan)
    users, items = APIRouter(), APIRouter()
    users.include_router(items)
    app.include_router(users)
    app.include_router(APIRouter())
    assert database_of(app) is db


def test_database_of_an_app_with_two_in_its_lifespan_is_left_to_the_user() -> None:
    db, other = Database("sqlite://"), Database("sqlite://", name="other")
    app = FastAPI(lifespan=db.lifespan)
    app.include_router(APIRouter(lifespan=other.lifespan))
    assert database_of(app) is None


def make_app(db: Database, *, sync: bool, async_: bool, nested: bool = False) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    def repository(session: DbSession) -> Session:
        return session

    if sync and nested:

        @app.get("/sync")
        def read(repo: Annotated[Session, Depends(repository)]) -> None: ...

    elif sync:

        @app.get("/sync")
        def read_plain(session: Annotated[Session, Depends(db.get_session)]) -> None: ...

    if async_:

        @app.get("/async")
        async def read_async(session: AsyncDbSession) -> None: ...

    @app.get("/health")
    def health() -> None: ...

    return app


@pytest.mark.parametrize(
    ("sync", "async_", "nested", "expected"),
    [
        (True, False, False, {"sync"}),
        (True, False, True, {"sync"}),
        (False, True, False, {"async"}),
        (True, True, False, {"sync", "async"}),
        (False, False, False, set()),
    ],
)
def test_session_flavours_follow_the_routes(
    sync: bool, async_: bool, nested: bool, expected: set[str]
) -> None:
    db = Database("sqlite://")
    app = make_app(db, sync=sync, async_=async_, nested=nested)
    assert session_flavours(app) == expected


def test_session_flavours_look_into_included_routers() -> None:
    db = Database("sqlite://")
    app = FastAPI(lifespan=db.lifespan)
    outer, inner = APIRouter(prefix="/outer"), APIRouter(prefix="/inner")

    @inner.get("/async")
    async def read_async(session: AsyncDbSession) -> None: ...

    outer.include_router(inner)
    app.include_router(outer)
    assert session_flavours(app) == {"async"}


def test_session_flavours_see_the_dependencies_of_an_include() -> None:
    db = Database("sqlite://")
    app = FastAPI(lifespan=db.lifespan)
    router, other = APIRouter(), APIRouter()

    @router.get("/plain")
    def plain() -> None: ...

    def audited(session: DbSession) -> None: ...

    @other.get("/other")
    def other_plain() -> None: ...

    app.include_router(router, dependencies=[Depends(audited)])
    app.include_router(other, dependencies=[Depends(db.get_async_session)])
    assert session_flavours(app) == {"sync", "async"}


@pytest.mark.parametrize(
    ("url", "sync", "async_", "expected"),
    [
        ("sqlite://", False, True, "async"),
        ("sqlite+aiosqlite://", True, False, "sync"),
        ("sqlite://", False, False, "sync"),
        ("sqlite+aiosqlite://", False, False, "async"),
        ("sqlite+aiosqlite://", True, True, "async"),
    ],
)
def test_app_flavour_falls_back_to_the_url(
    url: str, sync: bool, async_: bool, expected: str
) -> None:
    db = Database(url)
    assert app_flavour(make_app(db, sync=sync, async_=async_), db) == expected


URL_PROBE = """
def test_url(sessionscope_url):
    print("URL=" + str(sessionscope_url))
"""


@pytest.mark.parametrize(
    ("option", "env", "ini", "expected"),
    [
        ("sqlite:///option.db", "sqlite:///env.db", "sqlite:///ini.db", "sqlite:///option.db"),
        (None, "sqlite:///env.db", "sqlite:///ini.db", "sqlite:///env.db"),
        (None, None, "sqlite:///ini.db", "sqlite:///ini.db"),
        (None, None, None, "None"),
    ],
)
def test_url_option_env_and_ini_in_that_order(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    env: str | None,
    ini: str | None,
    expected: str,
) -> None:
    pytester.makeini("[pytest]\n" + (f"sessionscope_url = {ini}\n" if ini else ""))
    pytester.makepyfile(test_probe=URL_PROBE)
    if env:
        monkeypatch.setenv("SESSIONSCOPE_URL", env)
    else:
        monkeypatch.delenv("SESSIONSCOPE_URL", raising=False)
    args = ["-s", "-p", "no:randomly"] + (["--sessionscope-url", option] if option else [])
    result = pytester.runpytest_inprocess(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*URL={expected}*"])


def test_without_an_app_the_plugin_says_what_to_define(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SESSIONSCOPE_URL", raising=False)
    pytester.makepyfile(test_probe="def test_client(sessionscope_client): pass")
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define a `sessionscope_app` fixture in conftest.py*"])


def test_an_app_without_a_database_says_what_to_override(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from fastapi import FastAPI

        @pytest.fixture(scope="session")
        def sessionscope_app():
            return FastAPI()
        """
    )
    pytester.makepyfile(test_probe="def test_client(sessionscope_client): pass")
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*override the `sessionscope_database` fixture*"])


def test_a_database_from_the_url_alone(pytester: pytest.Pytester) -> None:
    """Without an app, the plugin binds a Database made from the URL: for code that only
    uses ``db.transaction()`` (workers, scripts)."""
    pytester.makepyfile(
        test_probe="""
        from sqlalchemy import text

        def test_bound(sessionscope_database, sessionscope_session):
            with sessionscope_database.transaction() as session:
                session.execute(text("CREATE TABLE t (x INTEGER)"))
                session.execute(text("INSERT INTO t VALUES (1)"))
            assert sessionscope_session.execute(text("SELECT x FROM t")).scalar_one() == 1
        """
    )
    result = pytester.runpytest_inprocess("--sessionscope-url", "sqlite://", "-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_a_sync_session_in_a_sync_test_of_an_async_app_is_refused(
    pytester: pytest.Pytester,
) -> None:
    """A sync test of an async app cannot also hold a sync session: one test, one binding."""
    pytester.makeconftest(
        """
        import pytest
        from fastapi import FastAPI
        from sessionscope import AsyncDbSession, Database

        db = Database("sqlite://")
        app = FastAPI(lifespan=db.lifespan)

        @app.get("/")
        async def read(session: AsyncDbSession) -> None: ...

        @pytest.fixture(scope="session")
        def sessionscope_app():
            return app
        """
    )
    pytester.makepyfile(test_probe="def test_both(sessionscope_session, sessionscope_client): pass")
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*already bound to a test transaction*"])
