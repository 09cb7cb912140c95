"""A COMMIT cut off on the wire: the client is told the outcome is unknown, and retries under
its Idempotency-Key create exactly one row (contract D4, and the unknown outcome of B4).

A proxy between the app and PostgreSQL closes the app's connection during the COMMIT, after
the server committed (``landed``) or before the server saw it: the app cannot tell the two
apart, and neither can the client, so both must end in exactly one row.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from sessionscope import Database

from .commit_cutter import CommitCutter
from .conftest import require_server
from .test_idempotency import count, order_tables, orders_app

pytestmark = pytest.mark.postgres


@pytest.fixture
def cutter() -> Iterator[tuple[CommitCutter, Database]]:
    url = make_url(require_server("postgres"))
    with (
        order_tables(url.render_as_string(hide_password=False)),
        CommitCutter(url.host or "127.0.0.1", url.port or 5432) as proxy,
    ):
        yield proxy, Database(url.set(host="127.0.0.1", port=proxy.port), pool_size=2)


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
def test_an_idempotent_post_retried_100_times_after_a_cut_commit_creates_one_row(
    cutter: tuple[CommitCutter, Database], flavour: str, landed: bool
) -> None:
    proxy, db = cutter
    app = orders_app(db)
    request = {"url": f"/{flavour}/orders", "json": {"label": "cut"}}
    headers = {"Idempotency-Key": "cut-1"}
    with TestClient(app, raise_server_exceptions=False) as client:
        proxy.arm(landed=landed)
        first = client.post(**request, headers=headers)
        assert proxy.cut.is_set()
        retries = [client.post(**request, headers=headers) for _ in range(100)]
    assert first.status_code == 503
    assert first.headers["retry-after"] == "1"
    assert "outcome is unknown" in first.json()["detail"]
    assert "Idempotency-Key" in first.json()["detail"]
    assert {retry.status_code for retry in retries} == {201}
    assert len({retry.content for retry in retries}) == 1
    replayed = [retry.headers.get("idempotent-replayed") == "true" for retry in retries]
    # The COMMIT that landed stored the response: every retry gets it. One that was lost
    # stored nothing: the first retry runs, the 99 after it get its response.
    assert replayed == ([True] * 100 if landed else [False] + [True] * 99)
    assert app.state.calls == (1 if landed else 2)
    assert count(db_for_count(db)) == 1


def test_without_a_key_a_retry_after_a_landed_commit_duplicates(
    cutter: tuple[CommitCutter, Database], flavour: str
) -> None:
    # Why the key matters: the same cut, retried without one, writes the row twice.
    proxy, db = cutter
    app = orders_app(db)
    with TestClient(app, raise_server_exceptions=False) as client:
        proxy.arm(landed=True)
        first = client.post(f"/{flavour}/orders", json={"label": "dup"})
        retry = client.post(f"/{flavour}/orders", json={"label": "dup"})
    assert first.status_code == 503
    assert "outcome is unknown" in first.json()["detail"]
    assert retry.status_code == 201
    assert count(db_for_count(db)) == 2


def db_for_count(db: Database) -> Database:
    """The database itself, not through the proxy."""
    direct = make_url(require_server("postgres"))
    return Database(direct.render_as_string(hide_password=False), check_on_startup=False)
