"""Listings: limit/offset with a total, keyset cursors, and their edges."""

from __future__ import annotations

import base64

import httpx
import pytest

from .service_helpers import new_item, new_user


@pytest.fixture
def five_items(client: httpx.Client) -> list[dict[str, object]]:
    owner = new_user(client)["id"]
    return [new_item(client, owner, name=f"item {n}") for n in range(5)]


def test_empty_listing(client: httpx.Client) -> None:
    for path in ("/users", "/items"):
        assert client.get(path).json() == {
            "items": [],
            "total": 0,
            "limit": 20,
            "offset": 0,
            "next_cursor": None,
        }


def test_offset_pages_and_the_last_page(
    client: httpx.Client, five_items: list[dict[str, object]]
) -> None:
    first = client.get("/items", params={"limit": 2}).json()
    assert (first["items"], first["total"], first["limit"]) == (five_items[:2], 5, 2)
    assert first["next_cursor"] is not None
    last = client.get("/items", params={"limit": 2, "offset": 4}).json()
    assert (last["items"], last["total"], last["offset"]) == (five_items[4:], 5, 4)
    assert last["next_cursor"] is None
    exact = client.get("/items", params={"limit": 5}).json()
    assert (exact["items"], exact["next_cursor"]) == (five_items, None)


def test_offset_past_the_end_is_an_empty_page_with_the_total(
    client: httpx.Client, five_items: list[dict[str, object]]
) -> None:
    page = client.get("/items", params={"offset": 5}).json()
    assert (page["items"], page["total"], page["next_cursor"]) == ([], 5, None)
    far = client.get("/items", params={"offset": 2**31 - 1}).json()
    assert (far["items"], far["total"]) == ([], 5)


def test_cursor_walks_every_row_once(
    client: httpx.Client, five_items: list[dict[str, object]]
) -> None:
    seen: list[dict[str, object]] = []
    params: dict[str, str | int] = {"limit": 2}
    for _ in range(10):
        page = client.get("/items", params=params).json()
        assert page["total"] == 5
        seen += page["items"]
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert seen == five_items


def test_cursor_is_stable_when_earlier_rows_are_deleted(
    client: httpx.Client, five_items: list[dict[str, object]]
) -> None:
    first = client.get("/items", params={"limit": 2}).json()
    client.delete(f"/items/{five_items[0]['id']}")
    second = client.get("/items", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert second["items"] == five_items[2:4]


def test_user_listing_pages_too(client: httpx.Client) -> None:
    users = [new_user(client) for _ in range(3)]
    first = client.get("/users", params={"limit": 2}).json()
    assert (first["items"], first["total"]) == (users[:2], 3)
    rest = client.get("/users", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert (rest["items"], rest["next_cursor"]) == (users[2:], None)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "!!!!",
        _b64("after:"),
        _b64("after:-1"),
        _b64("after:abc"),
        _b64("before:3"),
        _b64(f"after:{2**31}"),
        _b64("after:1" + "0" * 60),
        "x" * 65,
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
@pytest.mark.parametrize("path", ["/users", "/items"])
def test_bad_cursor_is_422(client: httpx.Client, path: str, cursor: str) -> None:
    response = client.get(path, params={"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_cursor_and_offset_together_is_422(
    client: httpx.Client, five_items: list[dict[str, object]]
) -> None:
    cursor = client.get("/items", params={"limit": 1}).json()["next_cursor"]
    response = client.get("/items", params={"cursor": cursor, "offset": 1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 2**31}, {"limit": "x"}]
)
@pytest.mark.parametrize("path", ["/users", "/items"])
def test_bad_limits_are_422(client: httpx.Client, path: str, params: dict[str, str | int]) -> None:
    assert client.get(path, params=params).status_code == 422
