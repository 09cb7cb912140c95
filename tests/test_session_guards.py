"""The guards on sessionscope's sessions cover every public method SQLAlchemy has, derived
from its classes: a method a later SQLAlchemy adds cannot bypass them."""

from __future__ import annotations

import inspect
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sessionscope import AsyncDbSession, Database, DbSession, SessionClosedError
from sessionscope._sessions import ALLOWED_AFTER_END, NOT_EXCLUSIVE, ScopedAsyncSession


def _public_methods(cls: type) -> list[str]:
    return [
        name
        for name in dir(cls)
        if not name.startswith("_") and inspect.isfunction(inspect.getattr_static(cls, name))
    ]


def test_the_allowed_methods_are_real_methods() -> None:
    # A name SQLAlchemy renamed would silently widen the refusal; a typo would do nothing.
    known = set(_public_methods(Session)) | set(_public_methods(AsyncSession))
    assert known >= ALLOWED_AFTER_END
    assert known >= NOT_EXCLUSIVE


def _leaked_request_session(database_url: str, flavour: str) -> Session | AsyncSession:
    db = Database(database_url)
    app = FastAPI(lifespan=db.lifespan)
    leaked: list[Any] = []

    @app.get("/sync")
    def sync_route(session: DbSession) -> None:
        leaked.append(session)

    @app.get("/async")
    async def async_route(session: AsyncDbSession) -> None:
        leaked.append(session)

    with TestClient(app) as client:
        assert client.get(f"/{flavour}").status_code == 200
    return leaked[0]  # type: ignore[no-any-return]


def _call(method: Any) -> Any:
    result = method()
    if inspect.iscoroutine(result):

        async def wait() -> Any:
            return await result

        return anyio.run(wait)
    return result


def test_every_public_method_of_an_ended_session_refuses(database_url: str, flavour: str) -> None:
    session = _leaked_request_session(database_url, flavour)
    classes: list[tuple[type, Any]] = [(Session, session)]
    if isinstance(session, AsyncSession):
        classes = [(AsyncSession, session), (Session, session.sync_session)]
    checked = 0
    for cls, target in classes:
        for name in _public_methods(cls):
            if name in ALLOWED_AFTER_END:
                continue
            with pytest.raises(SessionClosedError, match="BackgroundTasks"):
                _call(getattr(target, name))
            checked += 1
    assert checked >= 25  # SQLAlchemy 2.0 has fewer public methods than 2.1
    # Closing again stays harmless.
    _call(session.close)


def test_every_public_coroutine_method_is_exclusive_to_one_task() -> None:
    for name in _public_methods(AsyncSession):
        original = getattr(AsyncSession, name)
        if not inspect.iscoroutinefunction(original) or name in NOT_EXCLUSIVE:
            continue
        guarded = getattr(ScopedAsyncSession, name)
        assert getattr(guarded, "__wrapped__", None) is original, name
