"""pytest plugin: per-test rollback for sessionscope apps (registered as ``sessionscope``).

Thin fixtures over `sessionscope.testing`; nothing is autouse. Tell the plugin about the app
in a ``conftest.py``::

    @pytest.fixture(scope="session")
    def sessionscope_app():
        return app

and the database is found on the app. Then, per test:

* ``sessionscope_client``: a sync httpx client, the app's lifespan running, every request
  inside the test's transaction (for sync and async apps);
* ``sessionscope_session``: the test's own sync Session in that transaction;
* ``sessionscope_async_client`` / ``sessionscope_async_session``: the same for async tests
  (``@pytest.mark.anyio``) of async apps.

At the end of each test everything is rolled back, pass or fail.

A test that asks for ``sessionscope_query_budget`` fails when a request exceeds its query
budget (``query_budget``, ``unit_of_work(query_budget=...)``);
``--sessionscope-fail-on-query-budget`` (or the ini key
``sessionscope_fail_on_query_budget = true``) does so for every test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.types import ASGIApp

from ._binding import (
    AsyncBoundTransaction,
    BoundTransaction,
    async_rollback_after,
    rollback_after,
)
from ._database import Database
from ._discovery import Flavour, app_flavour, database_of, uses_sqlmodel
from ._observe import fail_on_query_budget
from ._session_kinds import as_sqlmodel

if TYPE_CHECKING:
    import httpx

# The clients need the `testing` extra (httpx, asgi-lifespan). They are imported inside the
# client fixtures, so that installing sessionscope without the extra never breaks pytest.

URL_OPTION = "--sessionscope-url"
URL_INI = "sessionscope_url"
URL_ENV = "SESSIONSCOPE_URL"
BUDGET_OPTION = "--sessionscope-fail-on-query-budget"
BUDGET_INI = "sessionscope_fail_on_query_budget"

_NO_APP = (
    "the sessionscope plugin does not know your app: define a `sessionscope_app` fixture in "
    "conftest.py that returns it (and `sessionscope_database` if the plugin cannot find the "
    "Database on the app)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sessionscope", "sessionscope test transactions")
    group.addoption(
        URL_OPTION,
        dest="sessionscope_url",
        default=None,
        metavar="URL",
        help=f"database URL for the `sessionscope_url` fixture (else ${URL_ENV}, else the "
        f"`{URL_INI}` ini key)",
    )
    parser.addini(URL_INI, "database URL for the `sessionscope_url` fixture", default=None)
    group.addoption(
        BUDGET_OPTION,
        dest="sessionscope_fail_on_query_budget",
        action="store_true",
        default=False,
        help="fail every test in which a request exceeds its query budget (N+1 detector)",
    )
    parser.addini(BUDGET_INI, "fail tests that exceed a query budget", type="bool", default=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    config = item.config
    watched = (
        config.getoption("sessionscope_fail_on_query_budget")
        or config.getini(BUDGET_INI)
        or "sessionscope_query_budget" in getattr(item, "fixturenames", ())
    )
    if not watched:
        return (yield)
    with fail_on_query_budget():
        return (yield)


@pytest.fixture
def sessionscope_query_budget() -> None:
    """Fail this test when one of its requests exceeds its query budget (the statements the
    database's ``query_budget`` or the route's ``unit_of_work(query_budget=...)`` allow)."""


@pytest.fixture(scope="session")
def sessionscope_url(pytestconfig: pytest.Config) -> str | None:
    """The database URL the tests run against: ``--sessionscope-url``, then the
    ``SESSIONSCOPE_URL`` environment variable, then the ``sessionscope_url`` ini key."""
    url = pytestconfig.getoption("sessionscope_url") or os.environ.get(URL_ENV)
    return url or pytestconfig.getini(URL_INI) or None


@pytest.fixture(scope="session")
def sessionscope_app() -> ASGIApp | None:
    """The app under test. Override it in conftest.py; ``None`` means: no app."""
    return None


@pytest.fixture(scope="session")
def sessionscope_database(
    sessionscope_app: ASGIApp | None, sessionscope_url: str | None
) -> Iterator[Database]:
    """The database to bind: the app's own, else one made from `sessionscope_url`."""
    if sessionscope_app is not None:
        db = database_of(sessionscope_app)
        if db is None:
            pytest.fail(
                "no sessionscope Database found on `sessionscope_app` (it has neither "
                "FastAPI(lifespan=db.lifespan) nor db.init_app(app)): override the "
                "`sessionscope_database` fixture to return it",
                pytrace=False,
            )
        with db:  # at the end, close the connections the test bindings opened
            yield db
        return
    if sessionscope_url is None:
        pytest.fail(_NO_APP, pytrace=False)
    db = Database(sessionscope_url)
    yield db
    anyio.run(db.shutdown)


@pytest.fixture(scope="session")
def sessionscope_flavour(
    sessionscope_app: ASGIApp | None, sessionscope_database: Database
) -> Flavour:
    """Which sessions `sessionscope_client` binds: what the app's routes ask for
    (`DbSession` -> ``"sync"``, `AsyncDbSession` -> ``"async"``), else the URL's flavour."""
    return app_flavour(sessionscope_app, sessionscope_database)


@pytest.fixture
def sessionscope_transaction(sessionscope_database: Database) -> Iterator[BoundTransaction]:
    """The test's outer transaction for sync sessions, rolled back at teardown."""
    with rollback_after(sessionscope_database) as bound:
        yield bound


@pytest.fixture
def sessionscope_session(
    sessionscope_app: ASGIApp | None,
    sessionscope_database: Database,
    sessionscope_transaction: BoundTransaction,
) -> Session:
    """The test's own Session, inside the same transaction as the app's requests (SQLModel's
    when the app's sessions are: ``session.exec()`` works)."""
    session = sessionscope_transaction.session()
    if uses_sqlmodel(sessionscope_app, sessionscope_database):
        as_sqlmodel(session)
    return session


@pytest.fixture
def sessionscope_client(
    request: pytest.FixtureRequest,
    sessionscope_app: ASGIApp | None,
    sessionscope_database: Database,
    sessionscope_flavour: Flavour,
) -> Iterator[httpx.Client]:
    """A sync httpx client for the app; its requests run inside the test's transaction.

    A sync app shares the transaction with `sessionscope_session`; an async app gets an async
    binding on the event loop the app runs on (check its data through the API, or write an
    async test with `sessionscope_async_client` and `sessionscope_async_session`).
    """
    if sessionscope_app is None:
        pytest.fail(_NO_APP, pytrace=False)
    from ._testclient import app_client

    if sessionscope_flavour == "sync":
        request.getfixturevalue("sessionscope_transaction")
        with app_client(sessionscope_app) as client:
            yield client
        return
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(async_rollback_after(sessionscope_database)),
        app_client(sessionscope_app, portal=portal) as client,
    ):
        yield client


_ASYNCIO_ONLY = (
    "sessionscope's async fixtures run on asyncio only (asyncpg, aiomysql and aiosqlite are "
    "asyncio libraries), and AnyIO's pytest plugin runs this test on {backend!r} too, as it "
    "does on every installed backend unless told otherwise. Choose asyncio in conftest.py:\n\n"
    "    @pytest.fixture\n"
    "    def anyio_backend():\n"
    '        return "asyncio"'
)


@pytest.fixture
def _sessionscope_asyncio_only(anyio_backend: str | tuple[str, dict[str, Any]]) -> None:
    """Fail with the fix before an async fixture runs on a backend the drivers cannot use.
    (AnyIO's ``anyio_backend`` is a name, or a name and its options.)"""
    backend = anyio_backend if isinstance(anyio_backend, str) else anyio_backend[0]
    if backend != "asyncio":
        pytest.fail(_ASYNCIO_ONLY.format(backend=backend), pytrace=False)


@pytest.fixture
async def sessionscope_async_transaction(
    anyio_backend: object, _sessionscope_asyncio_only: None, sessionscope_database: Database
) -> AsyncIterator[AsyncBoundTransaction]:
    """The test's outer transaction for async sessions, rolled back at teardown."""
    async with async_rollback_after(sessionscope_database) as bound:
        yield bound


@pytest.fixture
async def sessionscope_async_session(
    anyio_backend: object,
    sessionscope_app: ASGIApp | None,
    sessionscope_database: Database,
    sessionscope_async_transaction: AsyncBoundTransaction,
) -> AsyncSession:
    """The test's own AsyncSession, inside the same transaction as the app's requests
    (SQLModel's when the app's sessions are)."""
    session = sessionscope_async_transaction.session()
    if uses_sqlmodel(sessionscope_app, sessionscope_database):
        as_sqlmodel(session)
    return session


@pytest.fixture
async def sessionscope_async_client(
    anyio_backend: object,
    sessionscope_app: ASGIApp | None,
    sessionscope_async_transaction: AsyncBoundTransaction,
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx AsyncClient for an async app, on the test's event loop; its requests run
    inside the test's transaction, shared with `sessionscope_async_session`."""
    if sessionscope_app is None:
        pytest.fail(_NO_APP, pytrace=False)
    from ._testclient import async_app_client

    async with async_app_client(sessionscope_app) as client:
        yield client
