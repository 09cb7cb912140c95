"""405 answers whose ``Allow`` header names every method the path serves."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.routing import Match

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app serves at the request's path.

    Starlette's own 405 names only the methods of the first route that matched the path, and
    each method of a path is a route of its own (``GET /users`` and ``POST /users``).
    """
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def method_not_allowed(request: Request, error: Exception) -> JSONResponse:
    """Every 405, ``OPTIONS`` included (the service answers no preflight): Allow in full."""
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=405,
        headers={"Allow": ", ".join(allowed_methods(request))},
    )
