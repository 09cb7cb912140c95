"""FastAPI dependencies: the request's session, and per-route unit-of-work options."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
import warnings
from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.types import Scope

from ._errors import (
    BlockingSessionError,
    ConfigurationError,
    IdempotencyKeyError,
    NotInitializedError,
    SessionClosedError,
    SessionScopeError,
)
from ._idempotency import HEADER as IDEMPOTENCY_HEADER
from ._idempotency import IdempotencyMode, check_key, claim_key, new_claim
from ._manual_commit import route_label
from ._policy import CommitPolicy, check_commit_policy
from ._runtime import Binder, Runtime, UnitMode, acquire_slot
from ._tuning import IsolationLevel, check_isolation, check_retries, check_statement_timeout
from ._unit import UnitOfWork, current_unit

DEFAULT_SCOPE_KEY = "sessionscope"

ENDED_REQUEST = (
    "this session belongs to a request whose unit of work has ended (its response has been "
    "sent). Code that runs after the response, such as a BackgroundTasks function, needs a unit "
    "of work of its own: `with db.transaction() as session:` (or `async with`). A streaming "
    "route that reads while it streams declares "
    "`dependencies=[unit_of_work(keep_for_stream=True)]`."
)

_NOT_ATTACHED = (
    "no sessionscope Database is attached to this app: create it with "
    "FastAPI(lifespan=db.lifespan), or call db.init_app(app) before it starts"
)

_endpoint_is_async: dict[Any, bool] = {}

retries_declared = False
"""Whether any route declared ``unit_of_work(retries=N)``: until one does, no request can run
again, and the request boundary keeps nothing for a re-run."""


class Attached(Protocol):
    """What the dependencies need of a `Database`: the key of its unit in a request's scope."""

    @property
    def scope_key(self) -> str: ...


def _unit_for(scope: Scope, database: Attached | None) -> UnitOfWork:
    """The unit of work of ``database`` (``None``: the app's first) in a request's scope."""
    key = DEFAULT_SCOPE_KEY if database is None else database.scope_key
    unit: UnitOfWork | None = scope.get(key)
    if unit is None:
        if database is None:
            raise NotInitializedError(_NOT_ATTACHED)
        raise NotInitializedError(f"{database!r} is not attached to this app: {_NOT_ATTACHED}")
    return unit


def _is_async_endpoint(scope: Scope) -> bool:
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return False
    is_async = _endpoint_is_async.get(endpoint)
    if is_async is None:
        is_async = inspect.iscoroutinefunction(endpoint) or inspect.iscoroutinefunction(
            type(endpoint).__call__
        )
        _endpoint_is_async[endpoint] = is_async
    return is_async


def _refuse_blocking(scope: Scope, unit: UnitOfWork) -> None:
    if not _is_async_endpoint(scope):
        return
    endpoint = scope["endpoint"]
    name = getattr(endpoint, "__name__", repr(endpoint))
    message = (
        f"the sync session (DbSession) was requested by `async def {name}`: "
        "each query would block the event loop and stall every other request. Use AsyncDbSession "
        "in async endpoints, or declare the endpoint with `def` so FastAPI runs it in a worker "
        "thread. (Database(sync_in_async='warn') turns this error into a warning.)"
    )
    if unit.config.sync_in_async == "raise":
        raise BlockingSessionError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=2)


async def _prepare(unit: UnitOfWork, flavour: Literal["sync", "async"], scope: Scope) -> Binder:
    """Checks and the wait for a connection slot, before a request's session is created;
    returns where the session runs."""
    assert unit.attachment is not None
    apply_route_options(unit, scope)
    binder = unit.attachment.binder()
    if unit.ended:
        raise SessionClosedError(ENDED_REQUEST)
    if unit.async_connection is not None:
        raise SessionScopeError(
            "this request runs on the driver connection (the fast path) and has no session; "
            "a route that mixes ORM and driver statements asks for the session first and "
            "gets the driver connection from it: `await driver_connection(session, kind)`"
        )
    if (unit.async_session if flavour == "sync" else unit.sync_session) is not None:
        raise SessionScopeError(
            "this request already has a session of the other flavour (sync and async); "
            "one request uses one session: ask for DbSession everywhere (def endpoints) or "
            "AsyncDbSession everywhere (async def endpoints)"
        )
    if flavour == "sync":
        _refuse_blocking(scope, unit)
    if unit.min_lsn and isinstance(binder, Runtime):
        await binder.wait_for_replica(unit)
    slots = binder.slots(flavour)
    if slots is not None:
        # Wait for a connection here, on the event loop, before a sync endpoint takes a worker
        # thread: threads never sit blocked on an exhausted pool, so the requests that hold
        # connections always find a thread to finish on (no pool/threadpool deadlock). Async
        # requests queue here too, in arrival order, instead of inside the pool.
        waited = await acquire_slot(slots, unit.config)
        unit.hold_slot(slots)
    else:
        waited = 0.0
    unit.route = route_label(scope)
    current_unit.set(unit)
    unit.observation = unit.attachment.runtime.observer.open(scope, waited, unit.query_budget)
    return binder


async def request_sync_session(request: Request, database: Attached | None) -> Session:
    unit = _unit_for(request.scope, database)
    if unit.sync_session is not None:
        return unit.sync_session
    binder = await _prepare(unit, "sync", request.scope)
    return unit.open_sync(binder, ENDED_REQUEST)


async def request_async_session(request: Request, database: Attached | None) -> AsyncSession:
    unit = _unit_for(request.scope, database)
    if unit.async_session is not None:
        return unit.async_session
    binder = await _prepare(unit, "async", request.scope)
    return unit.open_async(binder, ENDED_REQUEST)


async def get_session(request: Request) -> Session:
    """FastAPI dependency: the request's sync `Session` (first database attached to the app)."""
    return await request_sync_session(request, None)


async def get_async_session(request: Request) -> AsyncSession:
    """FastAPI dependency: the request's `AsyncSession` (first database attached to the app)."""
    return await request_async_session(request, None)


DbSession = Annotated[Session, Depends(get_session)]
"""The request's sync session, for ``def`` endpoints and dependencies."""

AsyncDbSession = Annotated[AsyncSession, Depends(get_async_session)]
"""The request's AsyncSession, for ``async def`` endpoints and dependencies."""


def unit_of_work(
    *,
    commit: CommitPolicy | None = None,
    keep_for_stream: bool = False,
    write: bool | None = None,
    readonly: bool = False,
    primary: bool = False,
    isolation: IsolationLevel | None = None,
    statement_timeout: float | None = None,
    retries: int = 0,
    query_budget: int | None = None,
    idempotency: IdempotencyMode = False,
    database: Attached | None = None,
) -> Any:
    """Per-route options of the request's unit of work, as a route dependency::

        @app.post("/login", dependencies=[unit_of_work(commit="below_500")])

    * ``commit``: the `CommitPolicy` of this route.
    * ``keep_for_stream``: keep the session open while a streaming response is sent (it ends
      before the last chunk, or rolls back if the stream aborts). By default the session ends,
      and its connection returns to the pool, before the first byte.
    * ``write``: whether the route writes; by default, every method but GET, HEAD, OPTIONS and
      TRACE. On SQLite a writing unit takes the write lock at BEGIN, so concurrent
      read-modify-write requests queue instead of failing or losing updates.
    * ``readonly``: the route only reads. Its session refuses writes (ORM flushes and
      INSERT/UPDATE/DELETE statements raise `SessionScopeError`) and, on PostgreSQL, runs
      without a transaction: no BEGIN and COMMIT round trips, each statement sees the latest
      committed data. The fastest choice for hot read routes.
    * ``primary``: run on the primary even though the route only reads (with `replicas`
      configured, read-only units run on a replica): for reads that must see the latest
      commit of any client.
    * ``isolation``: the transaction isolation level of this route (``"READ COMMITTED"``,
      ``"REPEATABLE READ"``, ``"SERIALIZABLE"``...); by default the database's. The
      connection goes back to the pool at the default level.
    * ``statement_timeout``: seconds each statement may run (default: the database's
      ``statement_timeout``); a statement cancelled by it answers 503 with ``Retry-After``.
    * ``retries``: re-run the route's unit of work up to this many times when a statement or
      the COMMIT fails with a serialization failure or a deadlock before the response starts:
      the endpoint (and its dependencies) run again with a fresh session and the same request.
      Only for idempotent handlers: every effect outside the database happens once per run.
      A request that also used another database's session does not run again.
      Refused with ``keep_for_stream`` (a stream has started before its COMMIT).
    * ``query_budget``: the statements this route may run before a warning names the one it
      repeated most (overrides the database's ``query_budget``; it takes effect when
      per-request accounting is on, as it is whenever the database has a budget,
      ``query_stats``, ``server_timing`` or ``opentelemetry``).
    * ``idempotency``: a request that carries an ``Idempotency-Key`` header is answered
      once: its key, a fingerprint of the request and the response are stored in the same
      transaction as its work, and a retry under the same key gets the stored response
      without running the endpoint (a different request under the key: 422; one while the
      first still runs: 409). ``"required"``: a request without the header is refused (400).
      The key is claimed, before the endpoint runs, with the session flavour of the endpoint
      (``def``: `DbSession`, ``async def``: `AsyncDbSession`); the database needs the table of
      `idempotency_table`. Refused with ``keep_for_stream`` and ``readonly``: the response
      is stored, whole, before it is sent. docs/idempotency.md has the details.
    * ``database``: the database these options apply to (default: the app's first).
    """
    if readonly and write:
        raise ConfigurationError("unit_of_work(readonly=True) cannot also be write=True")
    mode: UnitMode | None = (
        "readonly" if readonly else None if write is None else ("write" if write else "read")
    )
    if commit is not None:
        check_commit_policy(commit)
    check_isolation(isolation)
    timeout = check_statement_timeout(statement_timeout)
    check_retries(retries)
    if retries:
        global retries_declared
        retries_declared = True
    if retries and keep_for_stream:
        raise ConfigurationError(
            "unit_of_work(retries=...) cannot be combined with keep_for_stream=True: a kept "
            "session commits after the stream has started, when the request cannot run again"
        )
    if idempotency not in (False, True, "required"):
        raise ConfigurationError(
            f"unit_of_work(idempotency=...) takes True, False or 'required', got {idempotency!r}"
        )
    if idempotency and (keep_for_stream or readonly or write is False):
        raise ConfigurationError(
            "unit_of_work(idempotency=True) stores the response with the route's writes before "
            "it is sent: it cannot be combined with keep_for_stream=True, readonly=True or "
            "write=False"
        )
    required_key = idempotency == "required"
    if idempotency and mode is None:
        mode = "write"  # the claim writes: on SQLite the write lock is taken at BEGIN
    tuned = isolation is not None or timeout is not None
    if query_budget is not None and query_budget < 0:
        raise ConfigurationError(f"query_budget must be None or >= 0, got {query_budget}")

    def configure(unit: UnitOfWork) -> None:
        if retries:
            unit.retries = retries
        if tuned:
            if unit.active:
                raise SessionScopeError(
                    "unit_of_work(isolation=..., statement_timeout=...) must run before the "
                    "session is created: put it in the route's `dependencies=[...]`"
                )
            if isolation is not None:
                unit.isolation = isolation
            if timeout is not None:
                unit.statement_timeout = timeout
        if commit is not None:
            unit.policy = commit
        if keep_for_stream:
            unit.keep_for_stream = True
        if primary:
            unit.primary = True
        if query_budget is not None:
            unit.query_budget = query_budget
        if mode is not None:
            if unit.active:
                raise SessionScopeError(
                    "unit_of_work(write=..., readonly=...) must run before the session is "
                    "created: put it in the route's `dependencies=[...]`"
                )
            unit.mode = mode

    async def configure_unit_of_work(request: Request) -> None:
        unit = _unit_for(request.scope, database)
        configure(unit)
        if idempotency:
            await _claim_idempotency_key(request, unit, database, required=required_key)

    if not idempotency:
        # Read by `hoist_route_options`: the options of a route's own dependencies are
        # applied without FastAPI solving a dependency on every request. A key claim needs
        # the request and its session: an idempotent route's options stay a dependency.
        configure_unit_of_work.sessionscope_options = (database, configure)  # type: ignore[attr-defined]
    return Depends(configure_unit_of_work)


_ROUTE_OPTIONS = "_sessionscope_unit_options"


def hoist_route_options(app: Any) -> None:
    """Take the `unit_of_work` dependencies out of each route's own dependencies: the request
    boundary and the session dependencies apply them (`apply_route_options`) from the matched
    route, the same options before the session opens, at a fraction of the cost of a FastAPI
    dependency. Those declared elsewhere (inside another dependency) stay dependencies."""
    for route in getattr(app, "routes", ()):
        dependant = getattr(route, "dependant", None)
        dependencies = getattr(dependant, "dependencies", None)
        if not isinstance(dependencies, list):
            continue
        hoisted = [
            options
            for sub in dependencies
            if (options := getattr(sub.call, "sessionscope_options", None)) is not None
        ]
        if not hoisted:
            continue
        dependencies[:] = [
            sub for sub in dependencies if getattr(sub.call, "sessionscope_options", None) is None
        ]
        setattr(route, _ROUTE_OPTIONS, (*getattr(route, _ROUTE_OPTIONS, ()), *hoisted))


SESSION_PARAMETER = "sessionscope_session_parameter"
"""The attribute of an endpoint wrapper that supplies the session parameter itself
(`hoist_session_parameters`): the session dependant it took out, and its index."""
_REQUEST_KEY = "_sessionscope_request"


class SessionParameters:
    """The routes of one app whose ``AsyncDbSession`` parameter is supplied by the endpoint's
    wrapper (`hoist_session_parameters`) instead of a dependency FastAPI solves on every
    request; a FastAPI dependency costs about 70,000 instructions, the wrapper a call.

    An override of `get_async_session` in ``app.dependency_overrides`` must be honoured,
    also one set after start-up (tests set them while the app runs): the request boundary
    calls `check` before routing, and the first time one is set the routes get the
    dependency back, for good. Their wrappers then pass the overridden session on."""

    __slots__ = ("_app", "_routes", "restored")

    def __init__(self, app: Any, routes: list[tuple[Any, Any, int]]) -> None:
        self._app = app
        self._routes = routes
        """(the route's dependant, the session's dependant taken out of it, its index)."""
        self.restored = False

    def check(self) -> None:
        overrides = getattr(self._app, "dependency_overrides", None)
        if overrides and get_async_session in overrides:
            self.restore()

    def restore(self) -> None:
        self.restored = True
        for dependant, session_dependant, index in self._routes:
            dependencies = dependant.dependencies
            if any(sub is session_dependant for sub in dependencies):
                continue
            # A new list: a request solving the route's dependencies right now goes on
            # over the old one.
            restored = list(dependencies)
            restored.insert(min(index, len(restored)), session_dependant)
            dependant.dependencies = restored


def hoist_session_parameters(app: Any) -> SessionParameters | None:
    """Supply the ``AsyncDbSession`` parameter of each ``async def`` endpoint of ``app``
    from a wrapper of the endpoint, the session opened as `get_async_session` opens it,
    after the route's other dependencies. Routes of included routers that FastAPI keeps as
    one entry, ``def`` endpoints (whose worker thread cannot wait for a slot) and sessions
    asked for inside other dependencies keep the dependency."""
    routes: list[tuple[Any, Any, int]] = []
    for route in getattr(app, "routes", ()):
        if not isinstance(route, APIRoute):
            continue
        dependant = route.dependant
        call = dependant.call
        hoisted = getattr(call, SESSION_PARAMETER, None)
        if hoisted is None:
            hoisted = _wrap_endpoint(dependant)
            if hoisted is None:
                continue
        routes.append((dependant, *hoisted))
    if not routes:
        return None
    parameters = SessionParameters(app, routes)
    parameters.check()
    if parameters.restored:
        return parameters
    for dependant, session_dependant, _ in routes:
        # Should the list not be replaceable, the wrapper passes the dependency's session on.
        with contextlib.suppress(AttributeError, TypeError):
            dependant.dependencies = [
                sub for sub in dependant.dependencies if sub is not session_dependant
            ]
    return parameters


def _wrap_endpoint(dependant: Any) -> tuple[Any, int] | None:
    call = dependant.call
    # FastAPI awaits the endpoint only when it is a coroutine function by its own test
    # (asyncio's before Python 3.13, inspect's after): both must say so.
    if not inspect.iscoroutinefunction(call) or (
        sys.version_info < (3, 13) and not asyncio.iscoroutinefunction(call)
    ):
        return None
    found = [
        (index, sub)
        for index, sub in enumerate(dependant.dependencies)
        if sub.call is get_async_session and sub.name is not None
    ]
    if len(found) != 1:
        return None
    index, session_dependant = found[0]
    request_name = dependant.request_param_name
    own_request = request_name is None
    if own_request:
        request_name = _REQUEST_KEY
    wrapper = _with_session(call, session_dependant.name, request_name, own_request=own_request)
    setattr(wrapper, SESSION_PARAMETER, (session_dependant, index))
    try:
        if own_request:
            dependant.request_param_name = request_name
        dependant.call = wrapper
    except (AttributeError, TypeError):
        # A FastAPI whose route description cannot be changed (a frozen Dependant): the
        # route keeps solving its session dependency, as `def` endpoints do.
        if own_request:
            with contextlib.suppress(AttributeError, TypeError):
                dependant.request_param_name = None
        return None
    _keep_endpoint_context(call, wrapper)
    return session_dependant, index


def _keep_endpoint_context(call: Any, wrapper: Any) -> None:
    # Recent FastAPI versions name the endpoint's file and line in validation errors, read
    # from the function they call (and cached by its id): the endpoint's, not the wrapper's
    # file. Versions without that context have nothing to keep.
    extract = getattr(fastapi_routing, "_extract_endpoint_context", None)
    cache = getattr(fastapi_routing, "_endpoint_context_cache", None)
    if callable(extract) and isinstance(cache, dict):
        cache[id(wrapper)] = extract(call)


def _with_session(
    call: Callable[..., Any], name: str, request_name: str, *, own_request: bool
) -> Callable[..., Any]:
    @functools.wraps(call)
    async def endpoint(**values: Any) -> Any:
        request = values.pop(request_name) if own_request else values[request_name]
        if name not in values:  # the dependency's value when it was given back
            values[name] = await request_async_session(request, None)
        return await call(**values)

    return endpoint


def apply_route_options(unit: UnitOfWork, scope: Scope) -> None:
    """Apply, once, the hoisted `unit_of_work` options of the request's route to ``unit``."""
    if unit.route_options_applied:
        return
    unit.route_options_applied = True
    hoisted = getattr(scope.get("route"), _ROUTE_OPTIONS, None)
    if not hoisted:
        return
    attachment = unit.attachment
    for database, configure in hoisted:
        if attachment is None or (
            attachment.default if database is None else database.scope_key == attachment.scope_key
        ):
            configure(unit)


async def _claim_idempotency_key(
    request: Request, unit: UnitOfWork, database: Attached | None, *, required: bool
) -> None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        if required:
            raise IdempotencyKeyError(
                400, "This route requires an Idempotency-Key header (a unique value per request)."
            )
        return
    key = check_key(value)
    claim = await new_claim(request, route_label(request.scope), key, unit.config.idempotency_ttl)
    if _is_async_endpoint(request.scope):
        await claim_key(claim, None, await request_async_session(request, database))
    else:
        await claim_key(claim, await request_sync_session(request, database), None)
    unit.idempotency = claim
