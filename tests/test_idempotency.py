"""Idempotency keys (contract D4) through a real app on every database, sync and async.

A route declared ``unit_of_work(idempotency=True)`` answers a request retried under its
``Idempotency-Key`` once: the endpoint's work, the key and the response are committed
together; a retry gets the stored response without running the endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Form, HTTPException, Response
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import (
    String,
    Table,
    create_engine,
    delete,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sessionscope import (
    AsyncDbSession,
    ConfigurationError,
    Database,
    DbSession,
    SessionScopeError,
    delete_expired_idempotency_keys,
    idempotency_table,
    unit_of_work,
)

from .conftest import require_server


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "idem_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(100))


keys = idempotency_table(Base.metadata)


class OrderIn(BaseModel):
    label: str


IDEMPOTENT = [unit_of_work(idempotency=True)]

LEFTOVERS = {
    # What a claim could leave on a pooled connection: advisory locks, a lock wait timeout.
    "postgresql": "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
    "AND pid = pg_backend_pid()",
    "mysql": "SELECT @@SESSION.innodb_lock_wait_timeout = @@GLOBAL.innodb_lock_wait_timeout",
    "sqlite": "SELECT 0",
}


class Gate:
    """Holds the endpoints of ``/held`` routes until released, and tells when one is inside."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()

    def wait(self) -> None:
        self.inside.set()
        assert self.release.wait(30)


def orders_app(db: Database, gate: Gate | None = None) -> FastAPI:
    app = FastAPI(lifespan=db.lifespan)
    app.state.calls = 0

    def created(row: Order, response: Response) -> dict[str, object]:
        app.state.calls += 1
        response.headers["Location"] = f"/orders/{row.id}"
        return {"id": row.id, "label": row.label}

    @app.post("/sync/orders", status_code=201, dependencies=IDEMPOTENT)
    def create_sync(body: OrderIn, session: DbSession, response: Response) -> dict[str, object]:
        row = Order(label=body.label)
        session.add(row)
        session.flush()
        return created(row, response)

    @app.post("/async/orders", status_code=201, dependencies=IDEMPOTENT)
    async def create_async(
        body: OrderIn, session: AsyncDbSession, response: Response
    ) -> dict[str, object]:
        row = Order(label=body.label)
        session.add(row)
        await session.flush()
        return created(row, response)

    @app.post("/sync/other", status_code=201, dependencies=IDEMPOTENT)
    def other_sync(body: OrderIn, session: DbSession, response: Response) -> dict[str, object]:
        return create_sync(body, session, response)

    @app.post("/async/other", status_code=201, dependencies=IDEMPOTENT)
    async def other_async(
        body: OrderIn, session: AsyncDbSession, response: Response
    ) -> dict[str, object]:
        return await create_async(body, session, response)

    @app.post("/sync/refused", dependencies=IDEMPOTENT)
    def refused_sync(body: OrderIn, session: DbSession) -> None:
        app.state.calls += 1
        session.add(Order(label=body.label))
        session.flush()
        raise HTTPException(400, "refused after writing")

    @app.post("/async/refused", dependencies=IDEMPOTENT)
    async def refused_async(body: OrderIn, session: AsyncDbSession) -> None:
        app.state.calls += 1
        session.add(Order(label=body.label))
        await session.flush()
        raise HTTPException(400, "refused after writing")

    @app.post(
        "/sync/required", status_code=201, dependencies=[unit_of_work(idempotency="required")]
    )
    def required_sync(body: OrderIn, session: DbSession, response: Response) -> dict[str, object]:
        return create_sync(body, session, response)

    @app.post(
        "/async/required", status_code=201, dependencies=[unit_of_work(idempotency="required")]
    )
    async def required_async(
        body: OrderIn, session: AsyncDbSession, response: Response
    ) -> dict[str, object]:
        return await create_async(body, session, response)

    @app.post("/sync/audited", dependencies=[unit_of_work(idempotency=True, commit="below_500")])
    def audited_sync(body: OrderIn, session: DbSession) -> None:
        refused_sync(body, session)

    @app.post("/async/audited", dependencies=[unit_of_work(idempotency=True, commit="below_500")])
    async def audited_async(body: OrderIn, session: AsyncDbSession) -> None:
        await refused_async(body, session)

    @app.get("/sync/leftovers")
    def leftovers_sync(session: DbSession) -> list[object]:
        return list(session.execute(text(LEFTOVERS[session.get_bind().dialect.name])).one())

    @app.get("/async/leftovers")
    async def leftovers_async(session: AsyncDbSession) -> list[object]:
        query = text(LEFTOVERS[session.get_bind().dialect.name])
        return list((await session.execute(query)).one())

    if gate is not None:

        @app.post("/sync/held", status_code=201, dependencies=IDEMPOTENT)
        def held_sync(body: OrderIn, session: DbSession, response: Response) -> dict[str, object]:
            result = create_sync(body, session, response)
            gate.wait()
            return result

        @app.post("/async/held", status_code=201, dependencies=IDEMPOTENT)
        async def held_async(
            body: OrderIn, session: AsyncDbSession, response: Response
        ) -> dict[str, object]:
            result = await create_async(body, session, response)
            await anyio.to_thread.run_sync(gate.wait)
            return result

    return app


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    with order_tables(database_url) as database:
        yield database


@contextmanager
def order_tables(database_url: str) -> Iterator[Database]:
    """A database with the tables of `orders_app`, dropped afterwards."""
    with tables_and_keys(database_url, Order.__table__):  # type: ignore[arg-type]
        yield Database(database_url, pool_size=2, max_overflow=2)


@contextmanager
def tables_and_keys(database_url: str, *tables: Table) -> Iterator[None]:
    """``tables``, new and dropped afterwards, and an empty key table. The key table may be
    the example service's, migrated on the same test database: it is dropped only when it
    was made here."""
    engine = create_engine(database_url)
    found = inspect(engine).has_table(keys.name)
    for table in reversed(tables):
        table.drop(engine, checkfirst=True)
    for table in (*tables, keys):
        table.create(engine, checkfirst=True)
    with engine.begin() as connection:
        connection.execute(delete(keys))
    try:
        yield
    finally:
        for table in reversed(tables):
            table.drop(engine)
        if found:
            with engine.begin() as connection:
                connection.execute(delete(keys))
        else:
            keys.drop(engine)
        engine.dispose()


def count(db: Database, table: object = Order) -> int:
    engine = create_engine(db.config.url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(table)))  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_a_retry_gets_the_stored_response_and_the_endpoint_runs_once(
    db: Database, flavour: str
) -> None:
    app = orders_app(db)
    with TestClient(app) as client:
        first = client.post(
            f"/{flavour}/orders", json={"label": "one"}, headers={"Idempotency-Key": "k-1"}
        )
        retries = [
            client.post(
                f"/{flavour}/orders", json={"label": "one"}, headers={"Idempotency-Key": "k-1"}
            )
            for _ in range(3)
        ]
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for retry in retries:
        assert retry.status_code == 201
        assert retry.content == first.content
        assert retry.headers["content-type"] == "application/json"
        assert retry.headers["location"] == first.headers["location"]
        assert retry.headers["idempotent-replayed"] == "true"
    assert app.state.calls == 1
    assert count(db) == 1


def test_requests_without_a_key_run_every_time(db: Database, flavour: str) -> None:
    app = orders_app(db)
    with TestClient(app) as client:
        for _ in range(2):
            assert client.post(f"/{flavour}/orders", json={"label": "x"}).status_code == 201
    assert app.state.calls == 2
    assert count(db) == 2
    assert count(db, keys) == 0


def test_another_request_under_the_same_key_is_422(db: Database, flavour: str) -> None:
    app = orders_app(db)
    headers = {"Idempotency-Key": "k-2"}
    with TestClient(app) as client:
        assert client.post(f"/{flavour}/orders", json={"label": "a"}, headers=headers).is_success
        other_body = client.post(f"/{flavour}/orders", json={"label": "b"}, headers=headers)
        other_query = client.post(f"/{flavour}/orders?x=1", json={"label": "a"}, headers=headers)
        # Keys are scoped per route: the same key on another route is another key.
        other_route = client.post(f"/{flavour}/other", json={"label": "a"}, headers=headers)
    assert other_body.status_code == 422
    assert "different request" in other_body.json()["detail"]
    assert other_query.status_code == 422
    assert other_route.status_code == 201
    assert "idempotent-replayed" not in other_route.headers
    assert app.state.calls == 2
    assert count(db) == 2


def test_a_rolled_back_request_stores_nothing_and_runs_again(db: Database, flavour: str) -> None:
    app = orders_app(db)
    headers = {"Idempotency-Key": "k-3"}
    with TestClient(app) as client:
        answers = [
            client.post(f"/{flavour}/refused", json={"label": "r"}, headers=headers)
            for _ in range(2)
        ]
    assert [answer.status_code for answer in answers] == [400, 400]
    assert "idempotent-replayed" not in answers[1].headers
    assert app.state.calls == 2
    assert count(db) == 0
    assert count(db, keys) == 0


def test_a_route_that_commits_its_4xx_stores_it(db: Database, flavour: str) -> None:
    app = orders_app(db)
    headers = {"Idempotency-Key": "k-10"}
    with TestClient(app) as client:
        answers = [
            client.post(f"/{flavour}/audited", json={"label": "a"}, headers=headers)
            for _ in range(2)
        ]
    assert [answer.status_code for answer in answers] == [400, 400]
    assert answers[1].headers["idempotent-replayed"] == "true"
    assert app.state.calls == 1
    assert count(db) == 1


def test_claims_leave_nothing_on_the_pooled_connection(database_url: str, flavour: str) -> None:
    with order_tables(database_url):
        db = Database(database_url, pool_size=1, max_overflow=0)
        app = orders_app(db)
        headers = {"Idempotency-Key": "k-11"}
        with TestClient(app) as client:
            for label in ("a", "a", "b"):  # claimed, replayed, refused (422)
                client.post(f"/{flavour}/orders", json={"label": label}, headers=headers)
            leftovers = client.get(f"/{flavour}/leftovers").json()
    assert leftovers == ([1] if db.sync_engine.dialect.name == "mysql" else [0])


def test_an_expired_key_is_new_and_is_purged(db: Database, flavour: str) -> None:
    app = orders_app(db)
    headers = {"Idempotency-Key": "k-4"}
    engine = create_engine(db.config.url)
    try:
        with TestClient(app) as client:
            assert client.post(f"/{flavour}/orders", json={"label": "e"}, headers=headers)
            with engine.begin() as connection:
                connection.execute(
                    update(keys).values(expires_at=datetime(2000, 1, 1) + timedelta(days=1))
                )
            again = client.post(f"/{flavour}/orders", json={"label": "e"}, headers=headers)
            assert again.status_code == 201
            assert "idempotent-replayed" not in again.headers
            replay = client.post(f"/{flavour}/orders", json={"label": "e"}, headers=headers)
            assert replay.headers["idempotent-replayed"] == "true"
            assert replay.content == again.content
            with engine.begin() as connection:
                assert delete_expired_idempotency_keys(connection) == 0
                connection.execute(update(keys).values(expires_at=datetime(2000, 1, 1)))
                assert delete_expired_idempotency_keys(connection) == 1
        assert app.state.calls == 2
        assert count(db) == 2
        assert count(db, keys) == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("key", "problem"),
    [("", "empty"), ('""', "empty"), ("x" * 256, "longer than 255"), ("clé", "ASCII")],
)
def test_an_unusable_key_is_400(db: Database, flavour: str, key: str, problem: str) -> None:
    app = orders_app(db)
    with TestClient(app) as client:
        answer = client.post(
            f"/{flavour}/orders",
            json={"label": "k"},
            headers={"Idempotency-Key": key.encode()},
        )
    assert answer.status_code == 400
    assert problem in answer.json()["detail"]
    assert count(db) == 0


def test_a_quoted_key_is_the_same_key_and_255_characters_fit(db: Database, flavour: str) -> None:
    app = orders_app(db)
    key = "q" * 255
    with TestClient(app) as client:
        first = client.post(
            f"/{flavour}/orders", json={"label": "q"}, headers={"Idempotency-Key": key}
        )
        quoted = client.post(
            f"/{flavour}/orders", json={"label": "q"}, headers={"Idempotency-Key": f'"{key}"'}
        )
    assert first.status_code == 201
    assert quoted.headers["idempotent-replayed"] == "true"
    assert count(db) == 1


def test_a_required_key_that_is_missing_is_400(db: Database, flavour: str) -> None:
    app = orders_app(db)
    with TestClient(app) as client:
        missing = client.post(f"/{flavour}/required", json={"label": "m"})
        given = client.post(
            f"/{flavour}/required", json={"label": "m"}, headers={"Idempotency-Key": "k-5"}
        )
    assert missing.status_code == 400
    assert "requires an Idempotency-Key" in missing.json()["detail"]
    assert given.status_code == 201
    assert count(db) == 1


async def _concurrent_duplicate(
    db: Database, flavour: str
) -> tuple[httpx.Response, httpx.Response, httpx.Response, int]:
    gate = Gate()
    app = orders_app(db, gate)
    headers = {"Idempotency-Key": "k-6"}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers: dict[str, httpx.Response] = {}

            async def post(name: str) -> None:
                answers[name] = await client.post(
                    f"/{flavour}/held", json={"label": "c"}, headers=headers, timeout=30
                )

            async with anyio.create_task_group() as group:
                group.start_soon(post, "first")
                await anyio.to_thread.run_sync(gate.inside.wait, 30)
                if db.sync_engine.dialect.name == "sqlite":
                    # SQLite serialises writers: the duplicate waits for the first one's
                    # write lock, so the first is released while it waits.
                    group.start_soon(post, "second")
                    await anyio.sleep(0.3)
                    gate.release.set()
                else:
                    await post("second")
                    gate.release.set()
            after = await client.post(
                f"/{flavour}/held", json={"label": "c"}, headers=headers, timeout=30
            )
    return answers["first"], answers["second"], after, app.state.calls


def test_a_concurrent_duplicate_is_409_or_waits_on_sqlite(db: Database, flavour: str) -> None:
    first, second, after, calls = anyio.run(_concurrent_duplicate, db, flavour)
    assert first.status_code == 201
    if db.sync_engine.dialect.name == "sqlite":
        assert second.status_code == 201
        assert second.headers["idempotent-replayed"] == "true"
        assert second.content == first.content
    else:
        assert second.status_code == 409
        assert "still being processed" in second.json()["detail"]
    assert after.headers["idempotent-replayed"] == "true"
    assert after.content == first.content
    assert calls == 1
    assert count(db) == 1


def test_idempotency_refuses_what_cannot_store_a_response() -> None:
    for options in ({"keep_for_stream": True}, {"readonly": True}, {"write": False}):
        with pytest.raises(ConfigurationError, match="idempotency=True"):
            unit_of_work(idempotency=True, **options)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="True, False or 'required'"):
        unit_of_work(idempotency="yes")  # type: ignore[arg-type]


@pytest.mark.postgres
def test_a_failed_commit_keeps_neither_the_work_nor_the_key(flavour: str) -> None:
    # A deferred unique constraint fails the COMMIT itself, after the response was stored in
    # the transaction: the key goes with the work, and a retry runs again.
    url = require_server("postgres")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS idem_deferred")
        connection.exec_driver_sql(
            "CREATE TABLE idem_deferred (v integer, CONSTRAINT idem_deferred_v UNIQUE (v) "
            "DEFERRABLE INITIALLY DEFERRED)"
        )
        connection.exec_driver_sql("INSERT INTO idem_deferred VALUES (1)")
    calls: list[int] = []

    def clash_app(db: Database) -> FastAPI:
        app = FastAPI(lifespan=db.lifespan)

        @app.post("/sync/clash", status_code=201, dependencies=IDEMPOTENT)
        def clash_sync(session: DbSession) -> dict[str, str]:
            calls.append(1)
            session.add(Order(label="clash"))
            session.execute(text("INSERT INTO idem_deferred VALUES (1)"))
            return {"ok": "yes"}

        @app.post("/async/clash", status_code=201, dependencies=IDEMPOTENT)
        async def clash_async(session: AsyncDbSession) -> dict[str, str]:
            calls.append(1)
            session.add(Order(label="clash"))
            await session.execute(text("INSERT INTO idem_deferred VALUES (1)"))
            return {"ok": "yes"}

        return app

    try:
        with order_tables(url) as db, TestClient(clash_app(db)) as client:
            answers = [
                client.post(f"/{flavour}/clash", headers={"Idempotency-Key": "k-7"})
                for _ in range(2)
            ]
            assert [answer.status_code for answer in answers] == [409, 409]
            assert "idempotent-replayed" not in answers[1].headers
            assert len(calls) == 2
            assert count(db) == 0
            assert count(db, keys) == 0
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE idem_deferred")
        engine.dispose()


def test_a_streaming_response_on_an_idempotent_route_is_refused(db: Database, flavour: str) -> None:
    app = FastAPI(lifespan=db.lifespan)

    def chunks() -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    @app.post("/sync/stream", dependencies=IDEMPOTENT)
    def stream_sync(session: DbSession) -> StreamingResponse:
        session.add(Order(label="streamed"))
        return StreamingResponse(chunks())

    @app.post("/async/stream", dependencies=IDEMPOTENT)
    async def stream_async(session: AsyncDbSession) -> StreamingResponse:
        session.add(Order(label="streamed"))
        return StreamingResponse(chunks())

    with TestClient(app) as client:
        with pytest.raises(SessionScopeError, match="streaming response"):
            client.post(f"/{flavour}/stream", headers={"Idempotency-Key": "k-8"})
        # Without a key nothing is stored: the stream goes out as on any route.
        assert client.post(f"/{flavour}/stream").content == b"ab"
    assert count(db) == 1
    assert count(db, keys) == 0


def test_a_form_body_is_part_of_the_fingerprint(db: Database, flavour: str) -> None:
    # FastAPI reads a form before the dependencies run and keeps no bytes: the parsed form
    # stands for the body.
    app = FastAPI(lifespan=db.lifespan)

    @app.post("/sync/form", status_code=201, dependencies=IDEMPOTENT)
    def form_sync(label: Annotated[str, Form()], session: DbSession) -> dict[str, str]:
        session.add(Order(label=label))
        return {"label": label}

    @app.post("/async/form", status_code=201, dependencies=IDEMPOTENT)
    async def form_async(label: Annotated[str, Form()], session: AsyncDbSession) -> dict[str, str]:
        session.add(Order(label=label))
        return {"label": label}

    headers = {"Idempotency-Key": "k-9"}
    with TestClient(app) as client:
        first = client.post(f"/{flavour}/form", data={"label": "f"}, headers=headers)
        same = client.post(f"/{flavour}/form", data={"label": "f"}, headers=headers)
        other = client.post(f"/{flavour}/form", data={"label": "g"}, headers=headers)
    assert first.status_code == 201
    assert same.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert count(db) == 1
