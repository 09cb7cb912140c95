"""The ``AsyncDbSession`` parameter of an ``async def`` endpoint is supplied by a wrapper of
the endpoint, not by a dependency FastAPI solves on every request, with the same session and
the same guarantees; ``app.dependency_overrides`` of `get_async_session` still apply, also
when set while the app runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from sessionscope import AsyncDbSession, Database, DbSession, get_async_session
from sessionscope._discovery import session_flavours

from .models import Base, Item


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=2, max_overflow=0)
    Base.metadata.create_all(database.sync_engine)
    yield database
    Base.metadata.drop_all(database.sync_engine)
    database.sync_engine.dispose()


class StandIn:
    """What an override hands the endpoint instead of the request's session."""

    def add(self, instance: object) -> None:
        pass


async def _stand_in() -> StandIn:
    return StandIn()


async def _same_session(session: AsyncDbSession) -> Any:
    return session


def _app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/items/{name}")
    async def add(name: str, session: AsyncDbSession) -> dict[str, str]:
        session.add(Item(name=name))
        return {"session": type(session).__name__}

    @app.post("/with-request/{name}")
    async def with_request(
        name: str, request: Request, session: AsyncDbSession, other: Any = Depends(_same_session)
    ) -> dict[str, Any]:
        session.add(Item(name=name))
        return {"path": request.url.path, "same": other is session}

    @app.get("/invalid-response", response_model=int)
    async def invalid_response(session: AsyncDbSession) -> Any:
        return "not a number"

    @app.get("/sync")
    def sync_endpoint(session: DbSession) -> dict[str, str]:
        return {"session": type(session).__name__}

    return app


def _route(app: FastAPI, path: str) -> APIRoute:
    return next(r for r in app.routes if isinstance(r, APIRoute) and r.path == path)


def _solves_session_dependency(app: FastAPI, path: str) -> bool:
    return any(sub.call is get_async_session for sub in _route(app, path).dependant.dependencies)


def _names(db: Database) -> list[str]:
    with db.transaction(readonly=True) as session:
        return list(session.scalars(select(Item.name).order_by(Item.name)))


def test_async_endpoint_gets_its_session_without_a_dependency(db: Database) -> None:
    app = _app(db)
    assert _solves_session_dependency(app, "/items/{name}")
    with TestClient(app) as client:
        assert not _solves_session_dependency(app, "/items/{name}")
        response = client.post("/items/a")
        assert response.status_code == 200
        assert response.json() == {"session": "ScopedAsyncSession"}
        assert _names(db) == ["a"]  # committed before the response
        response = client.post("/with-request/b")
        assert response.json() == {"path": "/with-request/b", "same": True}
        assert _names(db) == ["a", "b"]
    # The app's routes still tell a test binding which session flavours they use.
    assert session_flavours(app) == {"sync", "async"}
    # A second start of the same app (a second TestClient) serves the same way.
    with TestClient(app) as client:
        assert client.post("/items/c").json() == {"session": "ScopedAsyncSession"}
    assert _names(db) == ["a", "b", "c"]


def test_def_endpoint_keeps_its_dependency(db: Database) -> None:
    app = _app(db)
    with TestClient(app) as client:
        sync_route = _route(app, "/sync")
        assert any(sub.call.__name__ == "get_session" for sub in sync_route.dependant.dependencies)
        assert client.get("/sync").json() == {"session": "ScopedSession"}


def test_override_set_while_the_app_runs_is_honoured(db: Database) -> None:
    app = _app(db)
    with TestClient(app) as client:
        assert client.post("/items/a").json() == {"session": "ScopedAsyncSession"}
        app.dependency_overrides[get_async_session] = _stand_in
        assert client.post("/items/b").json() == {"session": "StandIn"}
        assert _solves_session_dependency(app, "/items/{name}")
        app.dependency_overrides.clear()
        assert client.post("/items/c").json() == {"session": "ScopedAsyncSession"}
    assert _names(db) == ["a", "c"]


def test_override_set_before_start_up_is_honoured(db: Database) -> None:
    app = _app(db)
    app.dependency_overrides[get_async_session] = _stand_in
    with TestClient(app) as client:
        assert client.post("/items/a").json() == {"session": "StandIn"}
    assert _names(db) == []


def test_validation_errors_still_name_the_endpoint(db: Database) -> None:
    app = _app(db)
    with TestClient(app) as client, pytest.raises(ResponseValidationError) as raised:
        client.get("/invalid-response")
    # FastAPI versions that name the endpoint in the message name the user's function and
    # file, not the wrapper's.
    message = str(raised.value)
    if "File " in message or "invalid_response" in message:
        assert __file__ in message or "test_session_parameter.py" in message
        assert "_dependencies.py" not in message


@pytest.mark.parametrize("frozen", [{"call"}, {"dependencies"}])
def test_a_route_description_that_cannot_change_keeps_the_dependency(
    db: Database, monkeypatch: pytest.MonkeyPatch, frozen: set[str]
) -> None:
    # A future FastAPI may freeze its Dependant: the app must still start and serve, the
    # session then supplied by the dependency (or passed on by the wrapper), not fail.
    app = _app(db)
    routes = {id(route.dependant) for route in app.routes if isinstance(route, APIRoute)}
    setattr_ = Dependant.__setattr__

    def refuse(self: Dependant, name: str, value: Any) -> None:
        if name in frozen and id(self) in routes:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        setattr_(self, name, value)

    monkeypatch.setattr(Dependant, "__setattr__", refuse)
    with TestClient(app) as client:
        assert _solves_session_dependency(app, "/items/{name}")
        assert client.post("/items/a").json() == {"session": "ScopedAsyncSession"}
        assert _names(db) == ["a"]
        response = client.post("/with-request/b")
        assert response.json() == {"path": "/with-request/b", "same": True}
    assert _names(db) == ["a", "b"]
