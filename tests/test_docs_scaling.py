"""The snippets of docs/scaling.md: each is a file of docs_src/scaling/, run here."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select

from .conftest import require_server
from .pgbouncer import require_pgbouncer, run_pgbouncer

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "scaling.md"
SNIPPETS = ROOT / "docs_src" / "scaling"
SENDERS = 4


def _load(name: str, monkeypatch: pytest.MonkeyPatch, url: str) -> ModuleType:
    monkeypatch.setenv("DATABASE_URL", url)
    return importlib.reload(importlib.import_module(f"docs_src.scaling.{name}"))


@pytest.fixture
def accounts(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = _load("retries", monkeypatch, database_url)
    engine = create_engine(database_url)
    module.Base.metadata.drop_all(engine)
    module.Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(module.Account), [{"id": 1, "balance": 1000}, {"id": 2, "balance": 0}]
        )
    yield module
    module.db.close()
    module.Base.metadata.drop_all(engine)
    engine.dispose()


def test_retried_transfers_from_threads_keep_the_total(accounts: ModuleType) -> None:
    module = accounts
    errors: list[BaseException] = []

    def send(number: int) -> None:
        try:
            if number % 2:
                module.transfer_money(1, 2, 10)
            else:
                module.transfer_money_inline(1, 2, 10)
        except Exception as error:
            errors.append(error)

    # Each failed run means another transfer committed: with 4 senders, at most 3 runs again
    # for any one of them, within its retries=5.
    threads = [threading.Thread(target=send, args=(number,)) for number in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with TestClient(module.app) as client:
        response = client.post("/transfers", json={"source": 1, "target": 2, "amount": 5})
        assert response.status_code == 200
    with module.db.transaction(readonly=True) as session:
        balances = dict(session.execute(select(module.Account.id, module.Account.balance)).all())
    assert balances == {1: 1000 - 10 * SENDERS - 5, 2: 10 * SENDERS + 5}
    assert len(module.sent) == SENDERS + 1


def test_isolation_and_timeouts_snippet(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load("isolation_timeouts", monkeypatch, database_url)
    assert module.db.config.statement_timeout == 5
    try:
        with TestClient(module.app) as client:
            assert client.get("/report").json() == {"first": 1, "second": 2}
        module.nightly_cleanup()
    finally:
        module.db.close()


def test_pool_sizing_examples_of_the_page() -> None:
    from docs_src.scaling.pool_sizing import (
        clients_per_bouncer,
        per_worker_capacity,
        pgbouncer_pool_size,
    )

    # 4 machines, 8 workers each, max_connections=200, 10 reserved.
    assert per_worker_capacity(200, 10, workers=8, machines=4) == 5
    assert per_worker_capacity(200, 10, workers=8, machines=4, engines=2) == 2
    with pytest.raises(ValueError, match="PgBouncer"):
        per_worker_capacity(200, 10, workers=16, machines=16)
    assert pgbouncer_pool_size(200, 10, bouncers=2) == 95
    assert clients_per_bouncer(workers=8, machines=4, capacity=15, bouncers=2) == 240


@pytest.mark.postgres
def test_pgbouncer_snippet(monkeypatch: pytest.MonkeyPatch) -> None:
    server_url = require_server("postgres")
    require_pgbouncer()
    with run_pgbouncer(server_url, pool_size=2) as url:
        monkeypatch.setenv("DATABASE_PGBOUNCER", "true")
        bounced = url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        module = _load("pgbouncer", monkeypatch, bounced)
        assert module.db.config.pgbouncer
        try:
            with TestClient(module.app) as client:
                for _ in range(12):
                    assert client.get("/answer").json() == 42
        finally:
            module.db.close()
