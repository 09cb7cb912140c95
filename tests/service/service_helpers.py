"""Small request helpers shared by the service tests."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

_numbers = itertools.count(1)


def new_user(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Create a user (unique email unless given) and return its body."""
    body = {
        "email": f"user{next(_numbers)}@example.com",
        "name": "Ada Lovelace",
        "password": "correct horse battery",
        **fields,
    }
    response = client.post("/users", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def new_item(client: httpx.Client, owner_id: int, **fields: Any) -> dict[str, Any]:
    body = {"name": "Notebook", "price_cents": 450, **fields}
    response = client.post(f"/users/{owner_id}/items", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
