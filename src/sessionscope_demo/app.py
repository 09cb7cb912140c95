"""The FastAPI app: routes, the database, and error responses that never echo secrets."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sessionscope import Database

from . import docs, health, items, users
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


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body without the ``input`` of each error: a rejected password must not
    come back in the response (nor in whatever logs responses)."""
    details = [
        {key: value for key, value in detail.items() if key != "input"} for detail in error.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(details)}, status_code=422)
