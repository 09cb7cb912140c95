"""The FastAPI app: routes, the database, and error responses that never echo secrets."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sessionscope import Database

from . import docs, health, items, users
from .limits import BodySizeLimit
from .methods import method_not_allowed
from .passwords import Passwords
from .settings import ServiceSettings

TITLE = "sessionscope demo: users and items"


def create_database(settings: ServiceSettings) -> Database:
    return Database(config=settings.database_config())


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the service. ``settings`` defaults to the environment (`ServiceSettings`)."""
    settings = settings or ServiceSettings()
    db = create_database(settings)
    app = FastAPI(
        title=TITLE,
        version="1.0.0",
        lifespan=db.lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.db = db
    app.state.passwords = Passwords(settings)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(405, method_not_allowed)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)
    app.include_router(users.router)
    app.include_router(items.router)
    app.include_router(health.router)
    docs.add_offline_docs(app)
    if db.config.prometheus:
        # DATABASE_PROMETHEUS=true: sessionscope exports its metrics to prometheus_client's
        # registry while the app runs; this serves them (and the process's own) to scrapers.
        from prometheus_client import make_asgi_app

        app.mount("/metrics", make_asgi_app())
    return app


MALFORMED_BODY = "There was an error parsing the body"
"""FastAPI's answer (400) to a body it cannot decode: invalid UTF-8, nesting too deep."""


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body without the ``input`` of each error: a rejected password must not
    come back in the response (nor in whatever logs responses).

    A body that is not JSON (truncated, trailing data, raw control characters) is a 400, as
    FastAPI answers to the bodies it cannot decode at all: one answer for every malformed
    body, whatever step of the decoding refused it."""
    if any(detail.get("type") == "json_invalid" for detail in error.errors()):
        return JSONResponse({"detail": MALFORMED_BODY}, status_code=400)
    details = [
        {key: value for key, value in detail.items() if key != "input"} for detail in error.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(details)}, status_code=422)
