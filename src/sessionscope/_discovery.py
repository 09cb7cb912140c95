"""What a test binding needs to know about an app: its `Database` and its session flavour.

Apps that split their routes over ``APIRouter``s are the common case, and recent FastAPI
versions keep an included router as one route entry (its routes are not copied into the app)
and wrap the app's lifespan in one that merges the routers' lifespans. Discovery looks
through both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant

from ._database import Database
from ._dependencies import SESSION_PARAMETER, get_async_session, get_session
from ._engines import is_async_url, parse_url
from ._runtime import attachments_of

Flavour = Literal["sync", "async"]

_LIFESPAN_DEPTH = 8
"""How many wrappers deep a lifespan is searched for a Database (one per included router
with FastAPI's merging, plus the user's own decorators)."""


def database_of(app: Any) -> Database | None:
    """The `Database` an app uses: the first attached one (``db.init_app(app)``), or the
    one whose lifespan the app was built with (``FastAPI(lifespan=db.lifespan)``), also when
    FastAPI wrapped that lifespan to merge the lifespans of included routers. ``None`` when
    there is none, or several in the lifespan: then it is the caller's choice."""
    attached = attachments_of(app)
    if attached:
        owner = attached[0].owner
        assert isinstance(owner, Database)
        return owner
    router = getattr(app, "router", None)
    found = set(_databases_in_lifespan(getattr(router, "lifespan_context", None), 0))
    return found.pop() if len(found) == 1 else None


def _databases_in_lifespan(lifespan: Any, depth: int) -> Iterator[Database]:
    """Every `Database` whose bound ``lifespan`` is ``lifespan`` or is held, through any
    number of wrapping closures, by the function it is."""
    owner = getattr(lifespan, "__self__", None)
    if isinstance(owner, Database):
        yield owner
        return
    function = getattr(lifespan, "__wrapped__", lifespan)  # under @asynccontextmanager
    if depth >= _LIFESPAN_DEPTH or not hasattr(function, "__code__"):
        return
    for cell in function.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # a variable of the closure not bound yet
            continue
        if callable(value):
            yield from _databases_in_lifespan(value, depth + 1)


def session_flavours(app: Any) -> set[Flavour]:
    """Which session flavours the app's routes ask for, through any depth of dependencies
    and of included routers."""
    found: set[Flavour] = set()
    for call in _dependency_calls(app):
        if call in (get_session, Database.get_session):
            found.add("sync")
        elif call in (get_async_session, Database.get_async_session):
            found.add("async")
        else:
            # Other session dependencies (sessionscope.sqlmodel's) say which flavour they are.
            flavour = getattr(call, "sessionscope_flavour", None)
            if flavour in ("sync", "async"):
                found.add(flavour)
    return found


def uses_sqlmodel(app: Any, db: Database) -> bool:
    """Whether the app's sessions are SQLModel's: by configuration, or because its routes
    ask for ``sessionscope.sqlmodel``'s sessions."""
    if db.config.session_class == "sqlmodel":
        return True
    return any(getattr(call, "sessionscope_sqlmodel", False) for call in _dependency_calls(app))


def _dependency_calls(app: Any) -> Iterator[Any]:
    pending = list(_route_dependants(getattr(app, "routes", ())))
    while pending:
        dependant = pending.pop()
        if getattr(dependant.call, SESSION_PARAMETER, None) is not None:
            # The endpoint's session parameter, supplied by its wrapper (see
            # `hoist_session_parameters`).
            yield get_async_session
        for dependency in dependant.dependencies:
            yield getattr(dependency.call, "__func__", dependency.call)
            pending.append(dependency)


def _route_dependants(routes: Any) -> Iterator[Dependant]:
    for route in routes:
        if hasattr(route, "dependant"):
            yield route.dependant
        included = getattr(route, "original_router", None)
        if included is not None:
            # The dependencies given to include_router() apply to each of its routes.
            context = getattr(route, "include_context", None)
            calls = [depends.dependency for depends in getattr(context, "dependencies", ())]
            yield Dependant(
                dependencies=[get_dependant(path="", call=call) for call in calls if call]
            )
            yield from _route_dependants(included.routes)


def app_flavour(app: Any, db: Database) -> Flavour:
    """The flavour a test binding needs for ``app``: what its routes ask for, or, when they
    ask for none (or for both), the flavour of the database's URL."""
    flavours = session_flavours(app)
    if len(flavours) == 1:
        return next(iter(flavours))
    return "async" if is_async_url(parse_url(db.config.url)) else "sync"
