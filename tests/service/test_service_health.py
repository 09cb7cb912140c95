"""``/healthz`` and ``/readyz``: liveness without the database, readiness through the pool."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from sessionscope_demo import create_app

from .conftest import make_settings


def test_healthz_and_readyz_answer_ok(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok"
    # The detail shows the pool: the readiness check's connection is back, idle.
    pool = ready["pools"]["async"]
    assert (pool["checked_out"], pool["waiters"]) == (0, 0)
    assert pool["idle"] >= 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mariadb"])
def test_readyz_is_503_with_a_reason_when_the_database_is_unreachable(
    backend: str, tmp_path: Path
) -> None:
    port = _closed_port()
    url = {
        "sqlite": f"sqlite:///{tmp_path}/no/such/directory/demo.db",
        "postgres": f"postgresql+psycopg://postgres:hunter2secret@127.0.0.1:{port}/test",
        "mariadb": f"mysql+pymysql://root:hunter2secret@127.0.0.1:{port}/test",
    }[backend]
    app = create_app(make_settings(url, database_check_on_startup=False))
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["reason"].startswith("cannot reach the database at ")
    assert "Error" in body["reason"]
    assert "hunter2secret" not in response.text


def test_a_service_started_without_its_database_answers_503_not_500(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/directory/demo.db"
    app = create_app(make_settings(url, database_check_on_startup=False))
    with TestClient(app) as client:
        response = client.get("/users")
    assert response.status_code == 503
    assert response.headers["retry-after"]
