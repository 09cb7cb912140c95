"""HTTP clients for tests: httpx in front of the app, with the app's lifespan running.

`app_client` serves sync tests: the app runs on an event loop in a portal thread (like
Starlette's TestClient), and a caller can hand in its own portal to run an async test binding
on that same loop. `async_app_client` serves async tests on the test's own loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.types import ASGIApp

from ._errors import MissingDriverError

try:
    from asgi_lifespan import LifespanManager
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise MissingDriverError(
        'sessionscope.testing needs asgi-lifespan: pip install "sessionscope[testing]"'
    ) from error

BASE_URL = "http://testserver"


class _PortalTransport(httpx.BaseTransport):
    """Sends each request of a sync `httpx.Client` through an ASGI app running in a portal."""

    def __init__(self, portal: BlockingPortal, app: ASGIApp) -> None:
        self._portal = portal
        self._transport = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> tuple[int, httpx.Headers, bytes, dict[str, Any]]:
            async_request = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                content=body,
                extensions=request.extensions,
            )
            response = await self._transport.handle_async_request(async_request)
            content = await response.aread()
            return response.status_code, response.headers, content, dict(response.extensions)

        status, headers, content, extensions = self._portal.call(send)
        return httpx.Response(status, headers=headers, content=content, extensions=extensions)


@asynccontextmanager
async def _lifespan(app: ASGIApp) -> AsyncIterator[ASGIApp]:
    """Run ``app``'s lifespan; yield the app that passes the lifespan state to requests."""
    async with LifespanManager(app, startup_timeout=None, shutdown_timeout=None) as manager:
        yield manager.app


@contextmanager
def app_client(
    app: ASGIApp, *, portal: BlockingPortal | None = None, base_url: str = BASE_URL
) -> Iterator[httpx.Client]:
    """A sync `httpx.Client` for ``app`` with its lifespan running for the block's duration.

    The app runs on ``portal``'s event loop (a new portal when none is given). Exceptions
    the app does not handle propagate to the test, as with Starlette's TestClient.
    """
    with ExitStack() as stack:
        if portal is None:
            portal = stack.enter_context(start_blocking_portal())
        running_app = stack.enter_context(portal.wrap_async_context_manager(_lifespan(app)))
        transport = _PortalTransport(portal, running_app)
        yield stack.enter_context(httpx.Client(transport=transport, base_url=base_url))


@asynccontextmanager
async def async_app_client(
    app: ASGIApp, *, base_url: str = BASE_URL
) -> AsyncIterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` for ``app`` on the current event loop, lifespan running."""
    async with _lifespan(app) as running_app:
        transport = httpx.ASGITransport(app=running_app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
