"""What a test binding needs to know about an app: its `Database` and its session flavour."""

from __future__ import annotations

from typing import Any, Literal

from ._database import Database
from ._dependencies import get_async_session, get_session
from ._engines import is_async_url, parse_url

Flavour = Literal["sync", "async"]


def database_of(app: Any) -> Database | None:
    """The `Database` an app uses: the first attached one (``db.init_app(app)``), or the
    one whose lifespan the app was built with (``FastAPI(lifespan=db.lifespan)``)."""
    router = getattr(app, "router", None)
    attached = getattr(router, "__dict__", {}).get("_sessionscope_databases")
    if attached:
        return attached[0]  # type: ignore[no-any-return]
    owner = getattr(getattr(router, "lifespan_context", None), "__self__", None)
    return owner if isinstance(owner, Database) else None


def session_flavours(app: Any) -> set[Flavour]:
    """Which session flavours the app's routes ask for, through any depth of dependencies."""
    found: set[Flavour] = set()
    routes = getattr(app, "routes", ())
    pending = [route.dependant for route in routes if hasattr(route, "dependant")]
    while pending:
        dependant = pending.pop()
        for dependency in dependant.dependencies:
            call = getattr(dependency.call, "__func__", dependency.call)
            if call in (get_session, Database.get_session):
                found.add("sync")
            elif call in (get_async_session, Database.get_async_session):
                found.add("async")
            pending.append(dependency)
    return found


def app_flavour(app: Any, db: Database) -> Flavour:
    """The flavour a test binding needs for ``app``: what its routes ask for, or, when they
    ask for none (or for both), the flavour of the database's URL."""
    flavours = session_flavours(app)
    if len(flavours) == 1:
        return next(iter(flavours))
    return "async" if is_async_url(parse_url(db.config.url)) else "sync"
