"""The example service with ``DATABASE_REPLICA_URLS`` set: GET routes read from the replica,
responses to writes carry bookmarks, ``/readyz`` shows the replica's health and lag."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sessionscope_demo import create_app

from ..service.conftest import drop_schema, make_settings, migrate
from .clusters import Replication, wait_for_replay

pytestmark = pytest.mark.replicas


@pytest.fixture
def service_url(replication: Replication) -> Iterator[str]:
    url = replication.primary.url("asyncpg")
    migrate(url)
    wait_for_replay(replication.primary, replication.replica)
    yield url
    drop_schema(url)


def test_the_service_reads_from_its_replica_with_bookmarks(
    replication: Replication, service_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_REPLICA_URLS", replication.replica.url("asyncpg"))
    monkeypatch.setenv("DATABASE_SERVED_BY_HEADER", "X-Served-By")
    monkeypatch.setenv("DATABASE_REPLICA_CHECK_INTERVAL", "0.1")
    app = create_app(make_settings(service_url))
    with TestClient(app) as client:
        deadline = time.monotonic() + 20
        while not all(replica["healthy"] for replica in client.get("/readyz").json()["replicas"]):
            assert time.monotonic() < deadline, "the replica never became healthy"
            time.sleep(0.05)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ok"
        assert [(r["name"], r["healthy"]) for r in ready["replicas"]] == [("replica 1", True)]
        assert ready["replicas"][0]["lag_seconds"] >= 0

        replication.replica.execute("SELECT pg_wal_replay_pause()")
        try:
            created = client.post(
                "/users",
                json={"email": "ada@example.com", "name": "Ada", "password": "correct horse"},
            )
            assert created.status_code == 201, created.text
            bookmark = created.headers["x-db-bookmark"]
            user = created.json()["id"]
            # The bookmark finds the new user on the primary while the replica is behind.
            fresh = client.get(f"/users/{user}", headers={"X-DB-Bookmark": bookmark})
            assert (fresh.status_code, fresh.headers["x-served-by"]) == (200, "primary")
            stale = client.get(f"/users/{user}")
            assert (stale.status_code, stale.headers["x-served-by"]) == (404, "replica 1")
        finally:
            replication.replica.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay(replication.primary, replication.replica)
        deadline = time.monotonic() + 20
        while True:
            read = client.get(f"/users/{user}", headers={"X-DB-Bookmark": bookmark})
            if read.headers["x-served-by"] == "replica 1":
                break
            assert time.monotonic() < deadline, "the replica never served the bookmark"
            time.sleep(0.05)
        assert read.json()["email"] == "ada@example.com"
        assert client.get("/items").headers["x-served-by"] == "replica 1"
        # Writes stay on the primary.
        deleted = client.delete(f"/users/{user}")
        assert (deleted.status_code, deleted.headers["x-served-by"]) == (204, "primary")
