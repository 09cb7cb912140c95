"""Primary failover (F3): a multi-host primary URL, the primary stopped, its replica promoted;
writes resume on the new primary without an app restart, and no write is answered 2xx
unless it committed. Sync routes on psycopg and async routes on asyncpg, in one run."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from sessionscope import AsyncDbSession, Database, DbSession

from .clusters import Replication, build_pair, drop_leftovers, failover_url, wait_for_replay
from .conftest import NOTES_TABLE, require_tools
from .replica_app import make_app

pytestmark = pytest.mark.replicas

FAILOVER_PRIMARY_PORT = 5443
FAILOVER_REPLICA_PORT = 5444


@pytest.fixture(scope="module")
def doomed() -> Iterator[Replication]:
    """A pair of its own: the test stops the primary and promotes the replica."""
    require_tools()
    drop_leftovers(range(FAILOVER_PRIMARY_PORT, FAILOVER_REPLICA_PORT + 1))
    pair = build_pair(FAILOVER_PRIMARY_PORT, FAILOVER_REPLICA_PORT)
    replication = next(pair)
    try:
        replication.primary.execute(NOTES_TABLE)
        wait_for_replay(replication.primary, replication.replica)
        yield replication
    finally:
        pair.close()


def _terminate_own_backend(url: str, pid: int) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        engine.dispose()


def _cut_off_app(db: Database, admin_url: str) -> FastAPI:
    """Routes whose connection dies after their INSERT, before their COMMIT."""
    app = FastAPI(lifespan=db.lifespan)
    insert = text("INSERT INTO notes (body) VALUES ('cut off')")
    pid = text("SELECT pg_backend_pid()")

    @app.post("/sync", status_code=201)
    def cut_off_sync(session: DbSession) -> None:
        session.execute(insert)
        _terminate_own_backend(admin_url, session.execute(pid).scalar_one())

    @app.post("/async", status_code=201)
    async def cut_off_async(session: AsyncDbSession) -> None:
        await session.execute(insert)
        backend = (await session.execute(pid)).scalar_one()
        _terminate_own_backend(admin_url, backend)

    return app


def test_a_write_whose_connection_dies_before_commit_is_503(replication: Replication) -> None:
    # On the session's pair (the failover test's own pair may be gone by now).
    primary = replication.primary
    db = Database(primary.url(), replicas=[replication.replica.url()])
    with TestClient(_cut_off_app(db, primary.url())) as client:
        for path in ("/sync", "/async"):
            response = client.post(path)
            assert response.status_code == 503, path
            assert "Retry-After" in response.headers
    assert primary.execute("SELECT count(*) FROM notes WHERE body = 'cut off'") == 0


def test_writes_resume_on_the_promoted_replica_without_a_restart(doomed: Replication) -> None:
    db = Database(
        failover_url(doomed, "psycopg"),
        replicas=[doomed.replica.url()],
        replica_check_interval=0.1,
        pool_timeout=2.0,
    )
    apps = {flavour: make_app(db, flavour) for flavour in ("sync", "async")}
    statuses: Counter[int] = Counter()
    with TestClient(apps["sync"]) as sync_client, TestClient(apps["async"]) as async_client:
        clients = {"sync": sync_client, "async": async_client}
        for client in clients.values():
            assert client.post("/notes", json={"body": "before"}).status_code == 201
        doomed.primary.stop()
        for client in clients.values():
            # No primary: a write is refused at once (503), it does not hang.
            statuses[client.post("/notes", json={"body": "no primary"}).status_code] += 1
        doomed.replica.promote()
        promoted = time.monotonic()
        resumed: dict[str, float] = {}
        while len(resumed) < len(clients):
            assert time.monotonic() - promoted < 60, f"writes did not resume: {statuses}"
            for flavour, client in clients.items():
                if flavour in resumed:
                    continue
                status = client.post("/notes", json={"body": f"after {flavour}"}).status_code
                statuses[status] += 1
                if status == 201:
                    resumed[flavour] = time.monotonic() - promoted
            time.sleep(0.02)
        print(f"\nfirst successful write after promotion: {resumed}, statuses {dict(statuses)}")
        # Reads still work: the promoted server answers them.
        for client in clients.values():
            assert client.get("/where").status_code == 200
    assert set(statuses) <= {201, 503}, statuses
    assert doomed.replica.execute("SELECT count(*) FROM notes WHERE body LIKE 'after %'") == 2
