"""``/items`` through HTTP on every database: each endpoint, each error, search and filters."""

from __future__ import annotations

import httpx
import pytest

from .service_helpers import new_item, new_user

INT32_MAX = 2**31 - 1


def test_create_and_read_an_item(client: httpx.Client) -> None:
    owner = new_user(client)
    response = client.post(
        f"/users/{owner['id']}/items",
        json={"name": "Lamp", "description": "brass, 40 cm", "price_cents": 1999},
    )
    assert response.status_code == 201
    item = response.json()
    assert set(item) == {"id", "owner_id", "name", "description", "price_cents", "created_at"}
    assert (item["owner_id"], item["name"], item["description"], item["price_cents"]) == (
        owner["id"],
        "Lamp",
        "brass, 40 cm",
        1999,
    )
    assert client.get(f"/items/{item['id']}").json() == item


def test_defaults_of_an_item(client: httpx.Client) -> None:
    owner = new_user(client)
    response = client.post(f"/users/{owner['id']}/items", json={"name": "Bare"})
    assert response.status_code == 201
    assert (response.json()["description"], response.json()["price_cents"]) == (None, 0)


def test_item_for_a_missing_user_is_404_and_stores_nothing(client: httpx.Client) -> None:
    response = client.post("/users/999999/items", json={"name": "Orphan"})
    assert response.status_code == 404
    assert response.json() == {"detail": "user 999999 not found"}
    assert client.get("/items").json()["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "n" * 201},
        {"name": "x", "description": "d" * 2001},
        {"name": "x", "price_cents": -1},
        {"name": "x", "price_cents": INT32_MAX + 1},
        {"name": "x", "price_cents": 1.5},
        {"name": "x", "price_cents": "ten"},
        {"name": "nul\x00"},
        {"name": "x", "description": "nul\x00"},
        {"name": "x", "owner_id": 1},
        {"name": None},
    ],
)
def test_invalid_item_input_is_422(client: httpx.Client, body: dict[str, object]) -> None:
    owner = new_user(client)
    assert client.post(f"/users/{owner['id']}/items", json=body).status_code == 422
    assert client.get("/items").json()["total"] == 0


def test_largest_price_fits(client: httpx.Client) -> None:
    item = new_item(client, new_user(client)["id"], price_cents=INT32_MAX)
    assert client.get(f"/items/{item['id']}").json()["price_cents"] == INT32_MAX


@pytest.mark.parametrize(
    "text",
    [
        "Tee 👕 für Zoë — 東京 ✓",
        "x'; DROP TABLE demo_items; --",
        "1 OR 1=1; SELECT * FROM demo_users",
        "%_\\",
    ],
)
def test_unicode_and_sql_looking_items_round_trip_verbatim(client: httpx.Client, text: str) -> None:
    item = new_item(client, new_user(client)["id"], name=text, description=text)
    assert (item["name"], item["description"]) == (text, text)
    assert client.get(f"/items/{item['id']}").json() == item
    assert client.get("/items", params={"q": text}).json()["items"] == [item]


def test_missing_item_is_404_for_every_method(client: httpx.Client) -> None:
    assert client.get("/items/999999").status_code == 404
    assert client.patch("/items/999999", json={"name": "x"}).status_code == 404
    response = client.delete("/items/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": "item 999999 not found"}


@pytest.mark.parametrize("item_id", ["0", str(INT32_MAX + 1), "nope"])
def test_item_ids_outside_the_column_range_are_422(client: httpx.Client, item_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        assert client.request(method, f"/items/{item_id}", json={}).status_code == 422


def test_patch_an_item(client: httpx.Client) -> None:
    item = new_item(client, new_user(client)["id"], description="old")
    response = client.patch(f"/items/{item['id']}", json={"price_cents": 1, "name": "New"})
    assert response.status_code == 200
    assert response.json() == {**item, "price_cents": 1, "name": "New"}
    cleared = client.patch(f"/items/{item['id']}", json={"description": None})
    assert cleared.json()["description"] is None
    assert client.get(f"/items/{item['id']}").json() == cleared.json()


@pytest.mark.parametrize(
    "body", [{"name": None}, {"price_cents": None}, {"price_cents": -5}, {"owner_id": 2}]
)
def test_patch_an_item_with_invalid_values_is_422(
    client: httpx.Client, body: dict[str, object]
) -> None:
    item = new_item(client, new_user(client)["id"])
    assert client.patch(f"/items/{item['id']}", json=body).status_code == 422
    assert client.get(f"/items/{item['id']}").json() == item


def test_delete_an_item(client: httpx.Client) -> None:
    owner = new_user(client)
    doomed = new_item(client, owner["id"], name="doomed")
    kept = new_item(client, owner["id"], name="kept")
    response = client.delete(f"/items/{doomed['id']}")
    assert response.status_code == 204
    assert client.get(f"/items/{doomed['id']}").status_code == 404
    assert client.get("/items").json()["items"] == [kept]
    assert client.get(f"/users/{owner['id']}").status_code == 200


def test_filter_by_owner(client: httpx.Client) -> None:
    alice, bob = new_user(client), new_user(client)
    alices = [new_item(client, alice["id"], name=f"a{n}") for n in range(3)]
    new_item(client, bob["id"], name="b")
    page = client.get("/items", params={"owner_id": alice["id"]}).json()
    assert (page["items"], page["total"]) == (alices, 3)
    nobody = client.get("/items", params={"owner_id": INT32_MAX}).json()
    assert (nobody["items"], nobody["total"]) == ([], 0)


def test_search_by_name_is_a_case_insensitive_substring_match(client: httpx.Client) -> None:
    owner = new_user(client)["id"]
    lamp = new_item(client, owner, name="Brass LAMP")
    lampshade = new_item(client, owner, name="lampshade")
    new_item(client, owner, name="Chair")
    page = client.get("/items", params={"q": "lamp"}).json()
    assert (page["items"], page["total"]) == ([lamp, lampshade], 2)
    assert client.get("/items", params={"q": "LAMPS"}).json()["items"] == [lampshade]


def test_search_wildcards_are_literal(client: httpx.Client) -> None:
    owner = new_user(client)["id"]
    percent = new_item(client, owner, name="100% cotton")
    new_item(client, owner, name="1000 cotton")
    underscore = new_item(client, owner, name="a_b")
    new_item(client, owner, name="axb")
    assert client.get("/items", params={"q": "0%"}).json()["items"] == [percent]
    assert client.get("/items", params={"q": "_"}).json()["items"] == [underscore]


def test_search_and_owner_filter_combine(client: httpx.Client) -> None:
    alice, bob = new_user(client)["id"], new_user(client)["id"]
    mine = new_item(client, alice, name="red pen")
    new_item(client, alice, name="blue pen")
    new_item(client, bob, name="red pen")
    page = client.get("/items", params={"q": "red", "owner_id": alice}).json()
    assert (page["items"], page["total"]) == ([mine], 1)


@pytest.mark.parametrize(
    "params",
    [{"q": ""}, {"q": "q" * 201}, {"q": "nul\x00"}, {"owner_id": 0}, {"owner_id": "x"}],
)
def test_invalid_item_filters_are_422(client: httpx.Client, params: dict[str, str | int]) -> None:
    assert client.get("/items", params=params).status_code == 422
