"""``/users`` through HTTP on every database: each endpoint, each error, secrets kept."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sessionscope_demo.models import User
from sessionscope_demo.passwords import Passwords
from sessionscope_demo.settings import ServiceSettings

from .service_helpers import new_item, new_user

INT32_MAX = 2**31 - 1


def test_create_returns_the_user_without_secrets(client: httpx.Client) -> None:
    response = client.post(
        "/users",
        json={"email": "Ada@Example.COM", "name": "Ada", "password": "correct horse battery"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "name", "created_at"}
    assert body["email"] == "ada@example.com"
    assert body["name"] == "Ada"
    assert body["created_at"].endswith("Z")
    assert client.get(f"/users/{body['id']}").json() == body


SIGN_UP_WITH_EMAIL_AND_PASSWORD = {"email": "deadpool@example.com", "password": "chimichangas4life"}
"""The body of the classic FastAPI + SQLAlchemy tutorial's sign-up, verbatim: no name."""


@pytest.mark.parametrize("path", ["/users", "/users/"])
def test_a_sign_up_without_a_name_is_created(client: httpx.Client, path: str) -> None:
    # The tutorial posts to "/users/": FastAPI redirects it to "/users" with a 307, which
    # keeps the method and the body.
    response = client.post(path, json=SIGN_UP_WITH_EMAIL_AND_PASSWORD, follow_redirects=True)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["email"], body["name"]) == ("deadpool@example.com", None)
    assert client.get(f"/users/{body['id']}").json() == body


@pytest.mark.anyio
async def test_the_password_is_stored_as_an_argon2_hash(
    sessionscope_async_client: httpx.AsyncClient,
    sessionscope_async_session: AsyncSession,
    settings: ServiceSettings,
) -> None:
    # An async test, to read the row in the same transaction as the (async) app wrote it.
    response = await sessionscope_async_client.post(
        "/users",
        json={"email": "hash@example.com", "name": "Hash", "password": "correct horse battery"},
    )
    assert response.status_code == 201, response.text
    stored = await sessionscope_async_session.scalar(
        select(User.password_hash).where(User.id == response.json()["id"])
    )
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert Passwords(settings).verify("correct horse battery", stored)
    assert not Passwords(settings).verify("wrong horse battery", stored)


def test_neither_password_nor_hash_reaches_a_response_or_a_log_line(
    client: httpx.Client, settings: ServiceSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # As the service's logging configuration does (tested with the CLI): aiosqlite prints
    # statement parameters at DEBUG.
    caplog.set_level(logging.INFO, logger="aiosqlite")
    password = "s3cret-PASSWORD-value"
    created = client.post(
        "/users", json={"email": "x@example.com", "name": "X", "password": password}
    )
    updated = client.patch(f"/users/{created.json()['id']}", json={"password": password + "2"})
    refused = client.post(
        "/users", json={"email": "y@example.com", "name": "Y", "password": "short"}
    )
    listed = client.get("/users")
    assert (created.status_code, updated.status_code, refused.status_code) == (201, 200, 422)
    responses = created.text + updated.text + refused.text + listed.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records, "the service logs its writes"
    for text in (responses, logged):
        assert password not in text
        assert "short" not in text.replace("too_short", "")
        assert "$argon2" not in text


def test_duplicate_email_is_409_and_case_insensitive(client: httpx.Client) -> None:
    new_user(client, email="dup@example.com")
    response = client.post(
        "/users", json={"email": "DUP@example.com", "name": "Other", "password": "12345678"}
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "a user with this email address already exists"}
    assert client.get("/users").json()["total"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", ""),
        ("email", "a" * 250 + "@example.com"),
        ("name", ""),
        ("name", "n" * 101),
        ("name", "nul\x00byte"),
        ("password", "1234567"),
        ("password", "p" * 257),
        ("password", 12345678),
        ("unknown", "field"),
    ],
)
def test_invalid_user_input_is_422(client: httpx.Client, field: str, value: object) -> None:
    body = {"email": "ok@example.com", "name": "Ok", "password": "long enough", field: value}
    response = client.post("/users", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field
    assert client.get("/users").json()["total"] == 0


def test_missing_fields_are_422(client: httpx.Client) -> None:
    assert client.post("/users", json={}).status_code == 422


def test_a_lone_surrogate_is_422_not_500(client: httpx.Client) -> None:
    raw = b'{"email": "s@example.com", "name": "\\ud800", "password": "long enough"}'
    response = client.post("/users", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    "text",
    [
        "Zoë 🦀 Ελληνικά 中文 עִבְרִית",
        "Robert'); DROP TABLE demo_users;--",
        "' OR '1'='1",
        '"; DELETE FROM demo_items WHERE "1"="1',
        "100% _wild_ [chars] \\ back",
    ],
)
def test_unicode_and_sql_looking_names_round_trip_verbatim(client: httpx.Client, text: str) -> None:
    user = new_user(client, name=text)
    assert user["name"] == text
    assert client.get(f"/users/{user['id']}").json()["name"] == text
    assert [row["name"] for row in client.get("/users").json()["items"]] == [text]


def test_unicode_email_round_trips(client: httpx.Client) -> None:
    user = new_user(client, email="zoë@exämple.com")
    assert client.get(f"/users/{user['id']}").json()["email"] == user["email"]
    again = client.post(
        "/users", json={"email": user["email"], "name": "Again", "password": "long enough"}
    )
    assert again.status_code == 409


def test_read_missing_user_is_404(client: httpx.Client) -> None:
    response = client.get("/users/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": "user 999999 not found"}


@pytest.mark.parametrize("user_id", ["0", "-1", str(INT32_MAX + 1), "abc", "1.5", "9" * 30])
def test_ids_outside_the_column_range_are_422(client: httpx.Client, user_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, f"/users/{user_id}", json={})
        assert response.status_code == 422, (method, response.text)


def test_largest_id_is_a_plain_404(client: httpx.Client) -> None:
    assert client.get(f"/users/{INT32_MAX}").status_code == 404


def test_patch_changes_only_the_given_fields(client: httpx.Client) -> None:
    user = new_user(client, email="before@example.com", name="Before")
    response = client.patch(f"/users/{user['id']}", json={"name": "After"})
    assert response.status_code == 200
    assert response.json() == {**user, "name": "After"}
    response = client.patch(f"/users/{user['id']}", json={"email": "AFTER@example.com"})
    assert response.json() == {**user, "name": "After", "email": "after@example.com"}
    assert client.get(f"/users/{user['id']}").json() == response.json()


def test_patch_with_nothing_is_a_no_op(client: httpx.Client) -> None:
    user = new_user(client)
    response = client.patch(f"/users/{user['id']}", json={})
    assert response.status_code == 200
    assert response.json() == user


def test_patch_to_own_email_is_allowed(client: httpx.Client) -> None:
    user = new_user(client)
    assert client.patch(f"/users/{user['id']}", json={"email": user["email"]}).status_code == 200


def test_patch_to_a_taken_email_is_409_and_changes_nothing(client: httpx.Client) -> None:
    first = new_user(client, email="first@example.com")
    second = new_user(client, email="second@example.com", name="Second")
    response = client.patch(
        f"/users/{second['id']}", json={"email": "first@example.com", "name": "Renamed"}
    )
    assert response.status_code == 409
    assert client.get(f"/users/{second['id']}").json() == second
    assert client.get(f"/users/{first['id']}").json() == first


@pytest.mark.parametrize(
    "body",
    [{"name": None}, {"email": None}, {"password": None}, {"name": ""}, {"password": "short"}],
)
def test_patch_with_invalid_values_is_422(client: httpx.Client, body: dict[str, object]) -> None:
    user = new_user(client)
    assert client.patch(f"/users/{user['id']}", json=body).status_code == 422
    assert client.get(f"/users/{user['id']}").json() == user


def test_patch_missing_user_is_404(client: httpx.Client) -> None:
    assert client.patch("/users/999999", json={"name": "x"}).status_code == 404


def test_delete_removes_the_user_and_their_items_only(client: httpx.Client) -> None:
    doomed = new_user(client)
    kept = new_user(client)
    for name in ("a", "b"):
        new_item(client, doomed["id"], name=name)
    kept_item = new_item(client, kept["id"], name="kept")
    response = client.delete(f"/users/{doomed['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/users/{doomed['id']}").status_code == 404
    assert client.get("/items").json()["items"] == [kept_item]
    assert client.delete(f"/users/{doomed['id']}").status_code == 404
