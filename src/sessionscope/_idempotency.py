"""Idempotency keys: a request retried under its ``Idempotency-Key`` is answered once.

A route declared ``unit_of_work(idempotency=True)`` claims the request's key in its own unit
of work before the endpoint runs, and stores the response in the same transaction as the
endpoint's work: the key, the response and the work are committed together or not at all.

The claim (`claim_key`) inserts the key's row. What it finds decides the request's fate:

* no row, or an expired one: the request runs; its row stays uncommitted until the unit's
  COMMIT, which the response (`record_response`) joins;
* a committed row of the same request (same fingerprint): the stored response is sent again
  (`StoredResponse`) and the endpoint does not run;
* a committed row of another request: 422;
* a row of a request still running: 409, at once. PostgreSQL: the claim takes a transaction
  advisory lock with ``pg_try_advisory_xact_lock`` before its insert; MariaDB: the insert
  runs under ``SET STATEMENT innodb_lock_wait_timeout=0``. Neither leaves anything on the
  connection. SQLite serialises writers already: the second request waits for the write
  lock (``sqlite_busy_timeout``) and then finds the first one's stored response.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

import anyio
from sqlalchemy import Connection, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.types import Message, Send

from ._errors import IdempotencyKeyError, SessionScopeError
from ._idempotency_table import KEYS, MAX_KEY_LENGTH, ROUTE_LENGTH, utc_now
from ._policy import CommitPolicy, should_commit
from ._runtime import Binder

HEADER = "idempotency-key"
REPLAYED_HEADER = (b"idempotent-replayed", b"true")
# The first of the two keys of PostgreSQL's advisory locks taken by claims: the two-key form
# keeps them apart from an app's own single-key locks. "ssik" in ASCII.
_PG_LOCK_CLASS = 0x7373696B
_MYSQL_LOCK_WAIT_TIMEOUT = 1205

IdempotencyMode = Literal["required"] | bool


@dataclass(eq=False)
class StoredResponse(Exception):
    """The response stored for a key: raised by the claim so that the request boundary sends
    it in place of running the endpoint. Not a `SessionScopeError`: no handler of the app
    may catch it on its way there."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    async def send_to(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [*self.headers, REPLAYED_HEADER],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class Claim:
    """A key claimed by a running request: its row is in the request's unit of work."""

    key_hash: str
    route: str
    key: str
    fingerprint: str
    ttl: float
    start: Message | None = None

    def hold(self, message: Message) -> Message | None:
        """Keep a message of the response; returns the start message once the response is
        complete (``message`` is then its last body part)."""
        kind = message["type"]
        if kind == "http.response.start":
            self.start = message
            return None
        if kind != "http.response.body" or message.get("more_body", False):
            # A stream, a file sent in parts or by the server (pathsend): nothing to store.
            raise SessionScopeError(
                f"`{self.route}` is declared unit_of_work(idempotency=True) and answered with "
                "a streaming response: an idempotent route's response is stored with its "
                "work before it is sent, whole. Return a plain Response (JSONResponse...) or "
                "drop idempotency=True from this route."
            )
        assert self.start is not None
        return self.start


def check_key(value: str) -> str:
    """The key of an ``Idempotency-Key`` header value; 400 when it cannot be one.

    The header is a Structured Field string (``"..."``) in the IETF draft and a bare token
    with Stripe: both are accepted, the quotes are not part of the key."""
    key = value.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key:
        raise IdempotencyKeyError(400, "The Idempotency-Key header is empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyError(
            400, f"The Idempotency-Key header is longer than {MAX_KEY_LENGTH} characters."
        )
    if not all(" " <= character <= "~" for character in key):
        raise IdempotencyKeyError(
            400, "The Idempotency-Key header must hold printable ASCII characters only."
        )
    return key


async def new_claim(request: Request, route: str, key: str, ttl: float) -> Claim:
    """The claim of ``key`` for ``request`` on ``route`` (``METHOD /path/template``): keys
    are scoped per route, and the fingerprint covers the method, the path, the query string
    and the body."""
    scope = request.scope
    digest = hashlib.sha256()
    for part in (
        scope["method"].encode("latin-1"),
        scope.get("raw_path") or scope["path"].encode("utf-8"),
        scope.get("query_string", b""),
    ):
        digest.update(part)
        digest.update(b"\0")
    digest.update(await _body_of(request))
    key_hash = hashlib.sha256(f"{route}\0{key}".encode()).hexdigest()
    return Claim(
        key_hash=key_hash,
        route=route[:ROUTE_LENGTH],
        key=key,
        fingerprint=digest.hexdigest(),
        ttl=ttl,
    )


async def _body_of(request: Request) -> bytes:
    try:
        return await request.body()
    except RuntimeError:
        # The body was read as a form (FastAPI parses forms before dependencies run, without
        # keeping the bytes): the parsed form stands for it.
        form = await request.form()
        digest = hashlib.sha256()
        for name, value in form.multi_items():
            digest.update(name.encode() + b"\0")
            if isinstance(value, str):
                digest.update(value.encode() + b"\0")
            else:
                await value.seek(0)
                digest.update(f"{value.filename}\0".encode() + await value.read() + b"\0")
                await value.seek(0)
        return digest.digest()


# -- the claim ---------------------------------------------------------------------------

_Outcome = Literal["claimed", "running", "mismatch"] | StoredResponse


async def claim_key(
    claim: Claim, sync_session: Session | None, async_session: AsyncSession | None
) -> None:
    """Claim ``claim``'s key in the session's transaction, or raise what the request gets
    instead: `StoredResponse`, or `IdempotencyKeyError` (409, 422)."""
    if async_session is not None:
        connection = await async_session.connection()
        outcome = await connection.run_sync(_claim, claim)
    else:
        assert sync_session is not None
        outcome = await anyio.to_thread.run_sync(_claim_in_session, sync_session, claim)
    if isinstance(outcome, StoredResponse):
        raise outcome
    if outcome == "running":
        raise IdempotencyKeyError(
            409,
            "A request with this Idempotency-Key is still being processed; retry after it "
            "has finished.",
        )
    if outcome == "mismatch":
        raise IdempotencyKeyError(
            422,
            "This Idempotency-Key was used for a different request (another method, path, "
            "query or body); use a new key for a new request.",
        )


def _claim_in_session(session: Session, claim: Claim) -> _Outcome:
    return _claim(session.connection(), claim)


def _claim(connection: Connection, claim: Claim) -> _Outcome:
    now = utc_now()
    row_values = {
        "key_hash": claim.key_hash,
        "route": claim.route,
        "idempotency_key": claim.key,
        "fingerprint": claim.fingerprint,
        "created_at": now,
        "expires_at": now + timedelta(seconds=claim.ttl),
    }
    dialect = connection.dialect
    mariadb = dialect.name == "mysql" and bool(getattr(dialect, "is_mariadb", False))
    try:
        if dialect.name == "postgresql":
            lock = func.pg_try_advisory_xact_lock(_PG_LOCK_CLASS, _lock_key(claim.key_hash))
            if not connection.scalar(select(lock)):
                return "running"
            statement: Any = postgresql.insert(KEYS).on_conflict_do_nothing()
        elif dialect.name == "sqlite":
            statement = sqlite.insert(KEYS).on_conflict_do_nothing()
        else:
            statement = KEYS.insert().prefix_with("IGNORE")
        if _execute(connection, statement.values(row_values), mariadb).rowcount == 1:
            return "claimed"
        query = select(KEYS).where(KEYS.c.key_hash == claim.key_hash)
        if dialect.name == "mysql":
            # A locking read sees the latest committed row whatever the snapshot; shared, so
            # concurrent replays do not wait for one another.
            query = query.with_for_update(read=True)
        row = _execute(connection, query, mariadb).one_or_none()
        if row is None:
            return "running"  # deleted in between: as good as taken
        if row.expires_at <= now:
            renew = (
                update(KEYS)
                .where(KEYS.c.key_hash == claim.key_hash, KEYS.c.expires_at <= now)
                .values(**row_values, status_code=None, response_headers=None, response_body=None)
            )
            renewed = _execute(connection, renew, mariadb)
            return "claimed" if renewed.rowcount == 1 else "running"
    except sa_exc.OperationalError as error:
        if _is_lock_wait_timeout(error):
            return "running"
        raise
    if row.fingerprint != claim.fingerprint:
        return "mismatch"
    if row.status_code is None:
        return "running"
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in json.loads(row.response_headers or "[]")
    ]
    return StoredResponse(int(row.status_code), headers, base64.b64decode(row.response_body or ""))


def _lock_key(key_hash: str) -> int:
    # A signed 32-bit int from the hash: the second key of the two-key advisory lock form.
    return int.from_bytes(bytes.fromhex(key_hash[:8]), "big", signed=True)


def _execute(connection: Connection, statement: Any, mariadb: bool) -> CursorResult[Any]:
    """Execute ``statement``; on MariaDB under ``SET STATEMENT innodb_lock_wait_timeout=0
    FOR``: a row of a running transaction fails it at once (1205) instead of waiting, and
    the setting ends with the statement."""
    # The rowcount of an INSERT is kept only on request.
    options = {"preserve_rowcount": True}
    if not mariadb:
        return connection.execute(statement, execution_options=options)
    compiled = statement.compile(dialect=connection.dialect)
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    return connection.exec_driver_sql(
        f"SET STATEMENT innodb_lock_wait_timeout=0 FOR {compiled}", params, options
    )


def _is_lock_wait_timeout(error: sa_exc.OperationalError) -> bool:
    orig = error.orig
    return bool(orig is not None and orig.args and orig.args[0] == _MYSQL_LOCK_WAIT_TIMEOUT)


# -- the response ------------------------------------------------------------------------


class Recording(Protocol):
    """What `record_response` reads of a unit of work."""

    @property
    def policy(self) -> CommitPolicy: ...

    @property
    def sync_session(self) -> Session | None: ...

    @property
    def async_session(self) -> AsyncSession | None: ...

    @property
    def binder(self) -> Binder | None: ...


async def record_response(unit: Recording, claim: Claim, start: Message, last: Message) -> None:
    """Store the response in the unit's transaction, when the unit is about to commit; a
    unit that rolls back forgets the key with the rest of its work."""
    status = int(start["status"])
    if not should_commit(status, None, unit.policy):
        return
    headers: Sequence[tuple[bytes, bytes]] = start.get("headers", ())
    values = {
        "status_code": status,
        "response_headers": json.dumps(
            [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers]
        ),
        "response_body": base64.b64encode(bytes(last.get("body", b""))).decode("ascii"),
    }
    statement = update(KEYS).where(KEYS.c.key_hash == claim.key_hash).values(values)
    if unit.async_session is not None:
        await unit.async_session.execute(statement)
    elif unit.sync_session is not None:
        session = unit.sync_session
        limiter = unit.binder.end_limiter if unit.binder is not None else None
        await anyio.to_thread.run_sync(session.execute, statement, limiter=limiter)
