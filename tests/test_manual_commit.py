"""A request's session committed by hand voids "an error response rolls back": sessionscope
warns once per route (``manual_commit="warn"``), or refuses (``"raise"``), or allows it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import select

from sessionscope import (
    AsyncDbSession,
    Database,
    DatabaseSettings,
    DbSession,
    ManualCommitWarning,
)

from .models import Base, Item


def build(db: Database, flavour: str) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)
    if flavour == "sync":

        @app.post("/items/{name}")
        def commits_then_refuses(name: str, session: DbSession) -> Any:
            session.add(Item(name=name))
            session.commit()
            return JSONResponse({"detail": "refused"}, status_code=400)

        @app.post("/plain/{name}", status_code=201)
        def plain(name: str, session: DbSession) -> None:
            session.add(Item(name=name))

    else:

        @app.post("/items/{name}")
        async def commits_then_refuses(name: str, session: AsyncDbSession) -> Any:
            session.add(Item(name=name))
            await session.commit()
            return JSONResponse({"detail": "refused"}, status_code=400)

        @app.post("/plain/{name}", status_code=201)
        async def plain(name: str, session: AsyncDbSession) -> None:
            session.add(Item(name=name))

    return app


@pytest.fixture
def make_client(database_url: str, flavour: str) -> Iterator[Any]:
    databases: list[Database] = []

    def make(**options: Any) -> TestClient:
        db = Database(database_url, **options)
        databases.append(db)
        Base.metadata.create_all(db.sync_engine)
        return TestClient(build(db, flavour), raise_server_exceptions=False)

    yield make
    for db in databases:
        Base.metadata.drop_all(db.sync_engine)
        db.close()


def names(client: TestClient) -> list[str]:
    db = client.app.router.lifespan_context.__self__  # type: ignore[attr-defined]
    with db.transaction(readonly=True) as session:
        return list(session.scalars(select(Item.name).order_by(Item.name)))


def test_manual_commit_warns_once_per_route(make_client: Any) -> None:
    client = make_client()
    with client:
        with pytest.warns(
            ManualCommitWarning, match=r"`POST /items/\{name\}` was committed by hand"
        ):
            assert client.post("/items/a").status_code == 400
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert client.post("/items/b").status_code == 400  # the same route: no second warning
            assert client.post("/plain/c").status_code == 201  # the response's own commit
    # What the warning is about: the 400 did not roll back the hand-made commit.
    assert names(client) == ["a", "b", "c"]


def test_manual_commit_can_be_refused(make_client: Any) -> None:
    client = make_client(manual_commit="raise")
    with client:
        assert client.post("/items/a").status_code == 500
        assert client.post("/plain/b").status_code == 201
    assert names(client) == ["b"]


def test_manual_commit_can_be_allowed(make_client: Any) -> None:
    client = make_client(manual_commit="allow")
    with client, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert client.post("/items/a").status_code == 400
    assert names(client) == ["a"]


def test_manual_commit_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_MANUAL_COMMIT", "raise")
    assert DatabaseSettings().to_config().manual_commit == "raise"
