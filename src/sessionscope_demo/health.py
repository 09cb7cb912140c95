"""``/healthz`` (the process answers) and ``/readyz`` (the database answers, through the pool)."""

from __future__ import annotations

from typing import Literal

import anyio
from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError

from sessionscope import Database

router = APIRouter(tags=["health"])

READY_TIMEOUT = 3.0
"""Seconds ``/readyz`` waits for ``SELECT 1``: a probe must answer before its own timeout."""


class Health(BaseModel):
    status: Literal["ok"]


class Pool(BaseModel):
    """One connection pool of the service's database, now (`Database.stats`)."""

    size: int | None
    checked_out: int
    idle: int
    overflow: int
    waiters: int


class ReplicaHealth(BaseModel):
    name: str
    healthy: bool
    lag_seconds: float | None
    reason: str | None


class Ready(BaseModel):
    status: Literal["ok"]
    pools: dict[str, Pool]
    """By flavour (``sync``, ``async``)."""
    replicas: list[ReplicaHealth] = []
    """With replicas configured: each one's health and lag. A replica that is down or lags
    does not make the service unready: its reads go to the primary."""


class NotReady(BaseModel):
    status: Literal["unavailable"]
    reason: str


@router.get("/healthz")
async def healthz() -> Health:
    """Liveness: answers without touching the database, so a database outage does not get
    every worker restarted."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": NotReady, "description": "Database unreachable"}},
)
async def readyz(request: Request) -> Ready | JSONResponse:
    """Readiness: ``SELECT 1`` on a connection from the service's own pool (the primary's); the
    pools' state (connections checked out, idle, overflow, requests waiting for one) and,
    with replicas, what their monitors last found, as detail."""
    db: Database = request.app.state.db
    try:
        with anyio.fail_after(READY_TIMEOUT):
            async with db.async_engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
    except Exception as error:
        body = NotReady(status="unavailable", reason=describe(error, db))
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    pools = {
        flavour: Pool(
            size=pool.size,
            checked_out=pool.checked_out,
            idle=pool.idle,
            overflow=pool.overflow,
            waiters=pool.waiters,
        )
        for flavour, pool in db.stats().pools.items()
    }
    replicas = [
        ReplicaHealth(
            name=replica.name,
            healthy=replica.healthy,
            lag_seconds=None if replica.lag is None else round(replica.lag, 3),
            reason=replica.reason,
        )
        for replica in db.replica_status()
    ]
    return Ready(status="ok", pools=pools, replicas=replicas)


def describe(error: Exception, db: Database) -> str:
    """One line on why the database cannot be used: never SQL, never the password."""
    if isinstance(error, TimeoutError):
        return f"the database at {db.url} did not answer within {READY_TIMEOUT:g} s"
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else ""
    password = make_url(db.config.url).password
    if password:
        text = text.replace(str(password), "***")
    return f"cannot reach the database at {db.url}: {type(cause).__name__}: {text}"
