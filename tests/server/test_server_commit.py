"""A2/A3 over real sockets: the COMMIT completes before the first byte of the response, a
failed COMMIT becomes a 409 that the app's middleware sees, an error response persists nothing."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import httpx
import pytest
from srv_harness import ProbeServer

pytestmark = pytest.mark.server

CORS_ORIGIN = "http://client.example"
# Each request on a fresh connection, as a second client (or a load-balanced retry) would.
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


def count_rows(client: httpx.Client, flavour: str, table: str, name: str) -> int:
    response = client.get(f"/{flavour}/rows/{table}", params={"name": name})
    response.raise_for_status()
    return int(response.json())


def test_write_is_visible_to_the_next_connection(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("default")
    token = secrets.token_hex(4)
    not_found: list[int] = []
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=server.base_url, limits=NO_KEEPALIVE, timeout=10) as client:
        for index in range(200):
            created = client.post(f"/{flavour}/items", json={"name": f"race-{token}-{index}"})
            assert created.status_code == 201, created.text
            read = client.get(f"/{flavour}/items/{created.json()['id']}")
            if read.status_code != 200:
                not_found.append(index)
            assert time.monotonic() < deadline, "200 POST/GET pairs took over a minute"
    assert not_found == []


def test_deferred_foreign_key_fails_at_commit_with_409(
    probe: Callable[[str], ProbeServer], flavour: str, backend: str
) -> None:
    server = probe("default")
    name = f"orphan-{secrets.token_hex(4)}"
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        response = client.post(
            f"/{flavour}/children",
            json={"name": name, "parent_id": 10**9},
            headers={"Origin": CORS_ORIGIN},
        )
        flushed = client.get("/debug/flushed").json()
        assert response.status_code == 409, response.text
        assert set(response.json()) == {"detail"}
        assert server.prefix not in response.text  # no SQL text, no table names
        # The 409 went through the app's normal error path: its CORS middleware decorated it.
        assert response.headers["access-control-allow-origin"] == CORS_ORIGIN
        # SQLite and PostgreSQL defer the check: the endpoint's flush passed and it returned
        # 201, so the failure came from the COMMIT. MariaDB cannot defer: it fails at flush.
        assert (name in flushed) is (backend != "mariadb")
        assert count_rows(client, flavour, "children", name) == 0
        # The refused transaction is gone: the next write does not find the database locked.
        after = client.post(f"/{flavour}/items", json={"name": f"after-{name}"})
        assert after.status_code == 201, after.text


def test_unique_violation_is_409_at_commit_or_flush(
    probe: Callable[[str], ProbeServer], flavour: str, backend: str
) -> None:
    server = probe("default")
    token = secrets.token_hex(4)
    code, first, second = f"code-{token}", f"first-{token}", f"second-{token}"
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        created = client.post(f"/{flavour}/codes", json={"code": code, "name": first})
        assert created.status_code == 201, created.text
        duplicate = client.post(
            f"/{flavour}/codes",
            json={"code": code, "name": second},
            headers={"Origin": CORS_ORIGIN},
        )
        flushed = client.get("/debug/flushed").json()
        assert duplicate.status_code == 409, duplicate.text
        assert duplicate.headers["access-control-allow-origin"] == CORS_ORIGIN
        # Only PostgreSQL defers a unique constraint to COMMIT.
        assert (second in flushed) is (backend == "postgres")
        assert count_rows(client, flavour, "codes", first) == 1
        assert count_rows(client, flavour, "codes", second) == 0


@pytest.mark.parametrize("raise_it", [False, True], ids=["returned", "raised"])
def test_error_response_after_a_write_persists_nothing(
    probe: Callable[[str], ProbeServer], flavour: str, raise_it: bool
) -> None:
    server = probe("default")
    name = f"refused-{secrets.token_hex(4)}"
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        response = client.post(
            f"/{flavour}/items/refused", params={"raise_it": raise_it}, json={"name": name}
        )
        assert response.status_code == 400, response.text
        assert count_rows(client, flavour, "items", name) == 0
