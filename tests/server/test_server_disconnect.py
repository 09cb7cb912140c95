"""A request abandoned by its client commits nothing (``rollback_on_disconnect``).

uvicorn does not cancel a request whose client went away: the handler runs on. Over a real
socket closed by the client while the handler waits, the boundary sees ``http.disconnect``
before the COMMIT and rolls back; with the option off the write is committed, as before.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest
from srv_harness import ProbeServer

pytestmark = pytest.mark.server

ROLLED_BACK = "went away before COMMIT; the unit of work is rolled back"


def abandon(server: ProbeServer, flavour: str, name: str) -> None:
    """Send a slow insert and give up on it: the client closes its socket after 0.3 s."""
    with (
        httpx.Client(base_url=server.base_url, timeout=0.3) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post(f"/{flavour}/items/slow", json={"name": name}, params={"ms": 1500})


def rows(server: ProbeServer, flavour: str, name: str) -> int:
    response = httpx.get(
        f"{server.base_url}/{flavour}/rows/items", params={"name": name}, timeout=10
    )
    response.raise_for_status()
    return int(response.json())


def test_an_abandoned_request_commits_nothing(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("default")
    name = f"abandoned-{secrets.token_hex(4)}"
    since = server.server.log_size()
    abandon(server, flavour, name)
    state = server.wait_pool_idle()  # the handler has ended its unit of work
    assert state["sync"] == state["async"] == 0
    assert rows(server, flavour, name) == 0
    assert ROLLED_BACK in server.server.log_text(since)


def test_with_the_option_off_an_abandoned_request_commits(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("commit_abandoned")
    name = f"abandoned-{secrets.token_hex(4)}"
    since = server.server.log_size()
    abandon(server, flavour, name)
    state = server.wait_pool_idle()
    assert state["sync"] == state["async"] == 0
    assert rows(server, flavour, name) == 1
    assert ROLLED_BACK not in server.server.log_text(since)


def test_a_request_whose_client_waits_commits(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("default")
    name = f"waited-{secrets.token_hex(4)}"
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        response = client.post(f"/{flavour}/items/slow", json={"name": name}, params={"ms": 50})
    assert response.status_code == 201, response.text
    assert rows(server, flavour, name) == 1
