"""A real uvicorn server under concurrent requests: the duplicate-email race.

These tests commit for real (see ``live_server``): twenty transactions must race for the
unique index, which one shared, rolled-back test transaction would serialise away. The
fixture deletes their rows afterwards, pass or fail.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import LiveServer

CONCURRENT_SIGNUPS = 20

pytestmark = pytest.mark.server


def test_concurrent_identical_signups_create_exactly_one_user(live_server: LiveServer) -> None:
    body = {"email": "race@example.com", "name": "Racer", "password": "same password"}
    start = threading.Barrier(CONCURRENT_SIGNUPS)

    def sign_up(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server.url, timeout=30) as client:
            start.wait(timeout=30)
            return client.post("/users", json=body)

    with ThreadPoolExecutor(max_workers=CONCURRENT_SIGNUPS) as pool:
        responses = list(pool.map(sign_up, range(CONCURRENT_SIGNUPS)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (CONCURRENT_SIGNUPS - 1), [r.text for r in responses]
    conflicts = {response.json()["detail"] for response in responses if response.status_code == 409}
    assert conflicts == {"a user with this email address already exists"}
    listing = httpx.get(f"{live_server.url}/users", params={"limit": 100}).json()
    assert listing["total"] == 1
    assert [user["email"] for user in listing["items"]] == ["race@example.com"]


def test_concurrent_item_creation_loses_nothing(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        owner = client.post(
            "/users", json={"email": "busy@example.com", "name": "Busy", "password": "12345678"}
        ).json()
    start = threading.Barrier(CONCURRENT_SIGNUPS)

    def add_item(number: int) -> int:
        with httpx.Client(base_url=live_server.url, timeout=30) as client:
            start.wait(timeout=30)
            return client.post(
                f"/users/{owner['id']}/items", json={"name": f"n{number}"}
            ).status_code

    with ThreadPoolExecutor(max_workers=CONCURRENT_SIGNUPS) as pool:
        statuses = list(pool.map(add_item, range(CONCURRENT_SIGNUPS)))
    assert statuses == [201] * CONCURRENT_SIGNUPS
    listing = httpx.get(f"{live_server.url}/items", params={"limit": 100}).json()
    assert sorted(item["name"] for item in listing["items"]) == sorted(
        f"n{number}" for number in range(CONCURRENT_SIGNUPS)
    )
