"""A7 over real sockets: a BackgroundTasks function runs after the response, when the
request's unit of work has ended. Touching the request's session fails loudly; a transaction
of its own on the very row the request wrote completes (the request holds no lock anymore)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from srv_harness import ProbeServer

pytestmark = pytest.mark.server


def background_outcome(client: httpx.Client, token: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/debug/background/{token}")
        if response.status_code == 200:
            return dict(response.json())
        time.sleep(0.05)
    raise AssertionError(f"the background task {token} did not finish within {timeout} s")


def test_background_task_using_the_request_session_is_refused(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("default")
    token = f"bg-session-{secrets.token_hex(4)}"
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        created = client.post(f"/{flavour}/background/session/{token}")
        assert created.status_code == 201, created.text
        outcome = background_outcome(client, token)
        assert outcome["ok"] is False
        assert outcome["error"] == "SessionClosedError"
        assert outcome["scope_error"] is True
        assert "db.transaction()" in outcome["message"]  # the message names the fix
        # The request's own write was committed, and the refused session took no connection.
        assert client.get(f"/{flavour}/items/{created.json()['id']}").status_code == 200
    state = server.wait_pool_idle()
    assert (state["sync"], state["async"]) == (0, 0), state


def test_background_transaction_locks_the_row_the_request_wrote(
    probe: Callable[[str], ProbeServer], flavour: str
) -> None:
    server = probe("default")
    token = f"bg-tx-{secrets.token_hex(4)}"
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        created = client.post(f"/{flavour}/background/transaction/{token}")
        assert created.status_code == 201, created.text
        # The app bounds the lock wait at 5 s: a self-deadlock shows as a recorded failure.
        assert background_outcome(client, token) == {"ok": True}
        item = client.get(f"/{flavour}/items/{created.json()['id']}")
        assert item.status_code == 200
        assert item.json()["touched"] == 1
