"""The snippets of docs/replicas.md, run against the real primary and replica."""

from __future__ import annotations

import importlib
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from .clusters import Replication

pytestmark = pytest.mark.replicas


def test_the_replica_app_and_its_client_read_their_writes(
    replication: Replication, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", replication.primary.url("asyncpg"))
    monkeypatch.setenv("DATABASE_REPLICA_URLS", replication.replica.url("asyncpg"))
    monkeypatch.setenv("DATABASE_SERVED_BY_HEADER", "X-Served-By")
    module = importlib.reload(importlib.import_module("docs_src.replicas.app"))
    client_module = importlib.import_module("docs_src.replicas.client")
    with TestClient(module.app) as client:
        deadline = time.monotonic() + 20
        while not all(status.healthy for status in module.db.replica_status()):
            assert time.monotonic() < deadline, "the replica never became healthy"
            time.sleep(0.05)
        replication.replica.execute("SELECT pg_wal_replay_pause()")
        try:
            assert client_module.save_then_show(client, "from the docs") == "from the docs"
        finally:
            replication.replica.execute("SELECT pg_wal_replay_resume()")
        note = client.post("/notes", json={"text": "fresh"}).json()
        fresh = client.get(f"/notes/{note}/fresh")
        assert (fresh.json(), fresh.headers["x-served-by"]) == ("fresh", "primary")


def test_the_failover_snippet_names_both_hosts() -> None:
    module = importlib.import_module("docs_src.replicas.failover")
    url = make_url(module.db.config.url)
    assert url.query["host"] == ("db1.internal:5432", "db2.internal:5432")
    assert url.query["target_session_attrs"] == "read-write"
    assert module.db.config.replicas == (module.REPLICA,)
    assert "secret" not in repr(module.db)
