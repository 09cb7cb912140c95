"""The snippets of docs/idempotency.md, run on every database: docs_src/idempotency/."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import anyio
import pytest
from docs_src.idempotency import client as payments_client
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from .test_idempotency import tables_and_keys


@pytest.fixture
def payments(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    module = importlib.reload(importlib.import_module("docs_src.idempotency.app"))
    with tables_and_keys(database_url, module.Payment.__table__):
        yield module


def payments_made(module: ModuleType) -> int:
    engine = create_engine(module.db.config.url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(module.Payment)))
    finally:
        engine.dispose()


def test_a_payment_retried_under_its_key_is_made_once(payments: ModuleType) -> None:
    with TestClient(payments.app) as client:
        paid = payments_client.pay(client, 1250)
        again = client.post(
            "/payments", json={"amount_cents": 1250}, headers={"Idempotency-Key": "order-7"}
        )
        replay = client.post(
            "/payments", json={"amount_cents": 1250}, headers={"Idempotency-Key": "order-7"}
        )
        refund_without_key = client.post("/refunds", json={"amount_cents": 100})
        refund = client.post(
            "/refunds", json={"amount_cents": 100}, headers={"Idempotency-Key": "refund-1"}
        )
    assert paid["amount_cents"] == 1250
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == again.json()
    assert refund_without_key.status_code == 400
    assert refund.status_code == 201
    assert payments_made(payments) == 3

    async def purge() -> int:
        try:
            return int(await payments.purge_expired_keys())
        finally:
            await payments.db.shutdown()

    assert anyio.run(purge) == 0
