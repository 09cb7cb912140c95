"""The service turns on sessionscope's visibility features from the environment: Prometheus
metrics at ``/metrics``, the ``Server-Timing`` header, the query budget and the slow-query log;
``/readyz`` shows the pool. In process, on a SQLite file migrated by the service's own
migrations."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sessionscope import Database
from sessionscope_demo import ServiceSettings, create_app
from sessionscope_demo.migrate import upgrade

from .conftest import FAST_HASHING


def test_environment_turns_everything_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    migrations = Database(url)
    upgrade(migrations)
    migrations.close()
    for variable, value in {
        "DATABASE_PROMETHEUS": "true",
        "DATABASE_SERVER_TIMING": "true",
        "DATABASE_QUERY_BUDGET": "1",
        "DATABASE_SLOW_QUERY_THRESHOLD": "0",
    }.items():
        monkeypatch.setenv(variable, value)
    caplog.set_level(logging.WARNING, "sessionscope")
    app = create_app(ServiceSettings(database_url=url, **FAST_HASHING))  # type: ignore[arg-type]
    with TestClient(app) as client:
        listing = client.get("/items")
        assert listing.status_code == 200
        assert listing.headers["server-timing"].startswith("db;dur=")
        scrape = client.get("/metrics/")
        assert client.get("/readyz").json()["pools"]["sync"]["checked_out"] == 0
    assert scrape.status_code == 200
    names = {family.name for family in text_string_to_metric_families(scrape.text)}
    assert {"sessionscope_pool_checked_out", "sessionscope_connection_hold_seconds"} <= names
    loggers = {record.name for record in caplog.records}
    assert {"sessionscope.slow_query", "sessionscope.query_budget"} <= loggers


def test_no_metrics_route_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_PROMETHEUS", raising=False)
    app = create_app(ServiceSettings(database_check_on_startup=False))
    assert not any(getattr(route, "path", "") == "/metrics" for route in app.routes)
