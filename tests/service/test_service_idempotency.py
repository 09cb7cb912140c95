"""The service's POST routes under ``Idempotency-Key`` on every database: a retried sign-up
or item creation is answered once, with the first answer (docs/service.md)."""

from __future__ import annotations

import httpx

from .service_helpers import new_user

USER = {"email": "retry@example.com", "name": "Retry", "password": "correct horse battery"}


def test_a_retried_sign_up_gets_the_first_answer_not_a_409(client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "sign-up-1"}
    first = client.post("/users", json=USER, headers=headers)
    retry = client.post("/users", json=USER, headers=headers)
    # Without the key the same retry is refused: the address is taken, by the first one.
    unkeyed = client.post("/users", json=USER)
    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    assert unkeyed.status_code == 409
    emails = [user["email"] for user in client.get("/users").json()["items"]]
    assert emails.count("retry@example.com") == 1


def test_a_retried_item_creation_makes_one_item(client: httpx.Client) -> None:
    owner = new_user(client)
    headers = {"Idempotency-Key": "item-1"}
    body = {"name": "Lamp", "price_cents": 1200}
    answers = [
        client.post(f"/users/{owner['id']}/items", json=body, headers=headers) for _ in range(3)
    ]
    assert {answer.status_code for answer in answers} == {201}
    assert {answer.json()["id"] for answer in answers} == {answers[0].json()["id"]}
    assert [answer.headers.get("idempotent-replayed") for answer in answers] == [
        None,
        "true",
        "true",
    ]
    items = client.get("/items", params={"owner_id": owner["id"]}).json()["items"]
    assert len(items) == 1


def test_a_key_reused_for_another_item_is_422(client: httpx.Client) -> None:
    owner = new_user(client)
    headers = {"Idempotency-Key": "item-2"}
    url = f"/users/{owner['id']}/items"
    assert client.post(url, json={"name": "Cup"}, headers=headers).status_code == 201
    other = client.post(url, json={"name": "Mug"}, headers=headers)
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]
    assert (
        client.post(url, json={"name": "Cup"}, headers={"Idempotency-Key": ""}).status_code == 400
    )
