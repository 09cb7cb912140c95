"""Contract section A (and B2, B3) through a real ASGI app, in process, on every backend,
for sync (`def` + DbSession) and async (`async def` + AsyncDbSession) endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from starlette.middleware.cors import CORSMiddleware

from sessionscope import (
    BlockingSessionError,
    ConfigurationError,
    Database,
    DbSession,
    MissingDriverError,
    NotInitializedError,
    SessionClosedError,
    SessionScopeError,
    get_session,
    unit_of_work,
)

from .apps import async_app, sync_app
from .models import Base, Item, Parent


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=3, max_overflow=0, pool_timeout=2.0)
    setup = database.sync_engine
    Base.metadata.drop_all(setup)
    Base.metadata.create_all(setup)
    yield database
    engine = database.sync_engine
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def app(db: Database, flavour: str) -> FastAPI:
    return (sync_app if flavour == "sync" else async_app).build(db)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def names(db: Database) -> list[str]:
    with db.transaction(readonly=True) as session:
        return list(session.scalars(select(Item.name).order_by(Item.name)))


def checked_out(db: Database, flavour: str) -> int:
    engine = db.sync_engine if flavour == "sync" else db.async_engine.sync_engine
    return int(engine.pool.checkedout())  # type: ignore[attr-defined]


# -- A1: one lazy session per request ---------------------------------------------------------


def test_dependencies_of_one_request_share_one_session(client: TestClient) -> None:
    assert client.get("/same-session").json() == {"same": True}


@pytest.mark.parametrize("path", ["/nodb", "/unused-session"])
def test_request_that_does_not_query_checks_out_no_connection(
    client: TestClient, db: Database, flavour: str, path: str
) -> None:
    engine = db.sync_engine if flavour == "sync" else db.async_engine.sync_engine
    checkouts: list[object] = []
    event.listen(engine, "checkout", lambda *args: checkouts.append(args))
    assert client.get(path).status_code == 200
    assert client.get("/items/count").status_code == 200
    assert len(checkouts) == 1  # only the request that queried


# -- A2: outcome follows the response ----------------------------------------------------------


def test_success_commits(client: TestClient, db: Database) -> None:
    response = client.post("/items", params={"name": "kept"})
    assert response.status_code == 201
    assert response.json()["name"] == "kept"
    assert names(db) == ["kept"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/items/returned-400", 400),
        ("/items/raised-400", 400),
        ("/items/crash", 500),
    ],
)
def test_error_responses_roll_back(
    client: TestClient, db: Database, path: str, status: int
) -> None:
    assert client.post(path, params={"name": "dropped"}).status_code == status
    assert names(db) == []


def test_validation_error_rolls_back_work_done_by_dependencies(
    client: TestClient, db: Database
) -> None:
    response = client.post("/items/validated", params={"name": "dropped"}, json={"value": "x"})
    assert response.status_code == 422
    assert names(db) == []
    response = client.post("/items/validated", params={"name": "kept"}, json={"value": 1})
    assert response.status_code == 200
    assert names(db) == ["kept"]


def test_route_policy_below_500_commits_a_client_error(client: TestClient, db: Database) -> None:
    assert client.post("/items/audit", params={"name": "attempt"}).status_code == 403
    assert names(db) == ["attempt"]


def test_route_policy_never_rolls_back_a_success(client: TestClient, db: Database) -> None:
    assert client.post("/items/dry-run", params={"name": "draft"}).status_code == 200
    assert names(db) == []


# -- A3: failed writes become error responses ---------------------------------------------------


def test_integrity_error_at_flush_is_409_without_sql(client: TestClient, db: Database) -> None:
    assert client.post("/items", params={"name": "twice"}).status_code == 201
    response = client.post("/items", params={"name": "twice"})
    assert response.status_code == 409
    body = response.json()
    assert set(body) == {"detail"}
    assert "INSERT" not in body["detail"].upper()
    assert "core_items" not in body["detail"]
    assert names(db) == ["twice"]


def test_failed_commit_is_409_and_skips_background_tasks(
    client: TestClient, db: Database, app: FastAPI
) -> None:
    # The deferred foreign key fails at COMMIT on SQLite and PostgreSQL, at flush on MariaDB:
    # the client gets 409 either way, never a 2xx.
    response = client.post("/children", params={"parent_id": 999})
    assert response.status_code == 409
    assert response.json() == {
        "detail": "The request conflicts with the current state of the data."
    }
    assert app.state.events == []
    with db.transaction() as session:
        session.add(Parent(id=1))
    assert client.post("/children", params={"parent_id": 1}).status_code == 200
    assert app.state.events == ["background ran"]


def test_commit_error_goes_through_other_middleware(db: Database, flavour: str) -> None:
    app = (sync_app if flavour == "sync" else async_app).build(db)
    app.add_middleware(CORSMiddleware, allow_origins=["https://example.com"])
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {"Origin": "https://example.com"}
        response = client.post("/children", params={"parent_id": 5}, headers=headers)
    assert response.status_code == 409
    assert response.headers["access-control-allow-origin"] == "https://example.com"


# -- A4: objects stay readable after the commit -----------------------------------------------


def test_objects_stay_loaded_after_transaction_commit(db: Database) -> None:
    with db.transaction() as session:
        item = Item(name="loaded")
        session.add(item)
    assert (item.id, item.name) == (item.id, "loaded")
    assert item.id is not None


# -- A5: streams do not hold connections --------------------------------------------------------


def test_stream_body_is_sent_after_the_connection_returned(
    client: TestClient, db: Database, flavour: str
) -> None:
    lines = client.get("/stream").text.splitlines()
    assert lines == ["0", "SessionClosedError"]
    assert checked_out(db, flavour) == 0


def test_stream_can_keep_its_session_when_asked(
    client: TestClient, db: Database, flavour: str
) -> None:
    client.post("/items", params={"name": "one"})
    lines = client.get("/stream-kept").text.splitlines()
    assert lines == ["1", "count 1"]
    assert checked_out(db, flavour) == 0


# -- A6: every path returns the connection ------------------------------------------------------


def test_no_connection_stays_checked_out_on_any_path(
    client: TestClient, db: Database, flavour: str
) -> None:
    for index in range(3):
        client.post("/items", params={"name": f"n{index}"})
        client.post("/items", params={"name": f"n{index}"})
        client.post("/items/crash", params={"name": f"c{index}"})
        client.post("/items/returned-400", params={"name": f"r{index}"})
        client.post("/children", params={"parent_id": 77})
        client.get("/stream")
    assert checked_out(db, flavour) == 0


# -- A7: no use after the end -------------------------------------------------------------------


def test_background_task_cannot_use_the_request_session(
    client: TestClient, app: FastAPI, db: Database, flavour: str
) -> None:
    assert client.post("/background", params={"name": "bg"}).status_code == 200
    [error] = app.state.events
    assert isinstance(error, SessionClosedError)
    assert "db.transaction()" in str(error)
    assert checked_out(db, flavour) == 0
    assert names(db) == ["bg"]


def test_background_task_with_its_own_transaction_updates_the_new_row(
    client: TestClient, db: Database
) -> None:
    assert client.post("/background-transaction", params={"name": "row"}).status_code == 200
    with db.transaction(readonly=True) as session:
        assert session.scalar(select(Item.counter).where(Item.name == "row")) == 1


# -- A8: after_commit ---------------------------------------------------------------------------


def test_after_commit_runs_once_only_after_a_commit(client: TestClient, app: FastAPI) -> None:
    assert (
        client.post("/items/after-commit", params={"name": "a", "fail": False}).status_code == 201
    )
    assert client.post("/items/after-commit", params={"name": "b", "fail": True}).status_code == 400
    assert (
        client.post("/items/after-commit", params={"name": "a", "fail": False}).status_code == 409
    )
    assert app.state.events == [("committed", "a")]


# -- B2: pool exhausted -------------------------------------------------------------------------


def test_exhausted_pool_answers_503_with_retry_after(database_url: str, flavour: str) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    Base.metadata.create_all(db.sync_engine)
    app = (sync_app if flavour == "sync" else async_app).build(db)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            # Take the only connection, then ask for another.
            if flavour == "sync":
                holder: Any = db.sync_engine.connect()
                release = holder.close
            else:
                holder = db.async_engine.connect()
                client.portal.call(holder.start)  # type: ignore[union-attr]

                def release() -> None:
                    client.portal.call(holder.close)  # type: ignore[union-attr]

            try:
                response = client.get("/items/count")
            finally:
                release()
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert client.get("/items/count").status_code == 200
    finally:
        Base.metadata.drop_all(db.sync_engine)
        db.sync_engine.dispose()


def test_items_count_sees_committed_rows(client: TestClient) -> None:
    client.post("/items", params={"name": "x"})
    client.post("/items", params={"name": "y"})
    assert client.get("/items/count").json() == 2


def test_pool_count_helper_counts(db: Database) -> None:
    # Guards the helper the A5/A6 tests rely on: a held connection is counted.
    connection = db.sync_engine.connect()
    try:
        assert checked_out(db, "sync") == 1
    finally:
        connection.close()
    assert checked_out(db, "sync") == 0
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 0


# -- A9: a sync session would block the event loop ---------------------------------------------


def _blocking_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.get("/blocking")
    async def blocking(session: DbSession) -> int:
        return len(session.execute(select(1)).all())

    return app


def test_sync_session_in_async_endpoint_is_refused(database_url: str) -> None:
    db = Database(database_url)
    with TestClient(_blocking_app(db)) as client, pytest.raises(BlockingSessionError) as caught:
        client.get("/blocking")
    assert "AsyncDbSession" in str(caught.value)
    assert "async def blocking" in str(caught.value)


def test_sync_session_in_async_endpoint_can_only_warn(database_url: str) -> None:
    db = Database(database_url, sync_in_async="warn")
    with (
        TestClient(_blocking_app(db)) as client,
        pytest.warns(RuntimeWarning, match="AsyncDbSession"),
    ):
        assert client.get("/blocking").json() == 1


def test_session_without_lifespan_names_the_fix(database_url: str) -> None:
    app = FastAPI()

    @app.get("/")
    def index(session: DbSession) -> None:
        return None

    with TestClient(app) as client, pytest.raises(NotInitializedError, match="lifespan"):
        client.get("/")


# -- read-only routes ---------------------------------------------------------------------------


def test_readonly_route_reads_without_a_transaction_on_postgres(
    client: TestClient, backend: str
) -> None:
    client.post("/items", params={"name": "seen"})
    body = client.get("/readonly/count").json()
    assert body["count"] == 1
    # PostgreSQL's drivers switch autocommit on the client: no BEGIN/COMMIT round trips.
    expected = True if backend == "postgres" else None
    assert body["statement_in_own_transaction"] is expected


def test_readonly_route_ends_by_closing_without_an_orm_commit(client: TestClient) -> None:
    commits: list[Session] = []

    def on_commit(session: Session) -> None:
        commits.append(session)

    event.listen(Session, "after_commit", on_commit)
    try:
        assert client.get("/readonly/count").status_code == 200
    finally:
        event.remove(Session, "after_commit", on_commit)
    assert commits == []


@pytest.mark.parametrize("path", ["/readonly/orm-write", "/readonly/core-write"])
def test_readonly_route_refuses_writes(db: Database, flavour: str, path: str) -> None:
    app = (sync_app if flavour == "sync" else async_app).build(db)
    with TestClient(app) as client, pytest.raises(SessionScopeError, match="read-only"):
        client.post(path, params={"name": "refused"})
    assert names(db) == []
    assert checked_out(db, flavour) == 0


def test_readonly_and_write_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="readonly"):
        unit_of_work(readonly=True, write=True)


async def _own_session(request: Request) -> Session:
    return await get_session(request)


def test_a_session_that_fails_to_open_gives_its_connection_slot_back(tmp_path: Path) -> None:
    # The sync flavour's driver is missing: every request fails to open its session. With one
    # connection slot, a slot kept by the first failure would turn the second into a 503.
    # (Routes that name DbSession would stop start-up instead; this one reaches the session
    # through a dependency of its own, which start-up does not see.)
    db = Database(
        f"sqlite+aiosqlite:///{tmp_path / 'slots.db'}",
        sync_url="postgresql+pg8000://nobody@127.0.0.1/none",
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.3,
    )
    app = FastAPI(lifespan=db.lifespan)

    @app.exception_handler(MissingDriverError)
    async def explain(request: Any, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": "misconfigured"}, status_code=500)

    @app.get("/")
    def index(session: Annotated[Session, Depends(_own_session)]) -> None:
        return None

    with TestClient(app, raise_server_exceptions=False) as client:
        assert [client.get("/").status_code for _ in range(3)] == [500, 500, 500]


def test_route_options_are_applied_without_a_dependency_per_request(database_url: str) -> None:
    db = Database(database_url, pool_size=2, max_overflow=0)
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/readonly", dependencies=[unit_of_work(readonly=True)])
    def write_in_readonly(session: DbSession) -> None:
        session.add(Item(name="refused"))
        session.flush()

    route = next(r for r in app.routes if getattr(r, "path", None) == "/readonly")
    before = len(route.dependant.dependencies)  # type: ignore[attr-defined]
    with TestClient(app, raise_server_exceptions=False) as client:
        # Taken out of FastAPI's per-request dependencies at start-up, still in force.
        assert len(route.dependant.dependencies) == before - 1  # type: ignore[attr-defined]
        assert client.post("/readonly").status_code == 500
