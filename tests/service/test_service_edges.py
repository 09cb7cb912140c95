"""The service's edges: what it answers to bodies, ids and methods it does not expect."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.types import Message

from sessionscope_demo import create_app

from .conftest import make_settings
from .service_helpers import new_item, new_user

# -- request-body size limit ---------------------------------------------------------------


def _raw_request(app: Any, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    """Send one POST straight to the ASGI app; the body must never be read."""
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/users",
        "raw_path": b"/users",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    anyio.run(app, scope, receive, send)
    return sent


def test_a_declared_oversized_body_is_413_before_it_is_read() -> None:
    app = create_app(make_settings("sqlite://", max_request_body_bytes=100))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"10000000")]
    start, body = _raw_request(app, headers)
    assert start["status"] == 413
    assert b"at most 100 bytes" in body["body"]


def test_a_body_over_the_limit_is_413(client: httpx.Client) -> None:
    padding = " " * (64 * 1024)  # valid JSON whitespace: only the size is wrong
    body = '{"email": "big@example.com", "name": "Big", "password": "12345678"}' + padding
    response = client.post("/users", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large: at most 65536 bytes"}
    assert client.get("/users").json()["total"] == 0


def test_a_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "chunked@example.com", "name": "C", "password": "12345678"}'
        for _ in range(65):
            yield b" " * 1024

    response = client.post("/users", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert client.get("/users").json()["total"] == 0


def test_a_body_at_the_limit_is_served(client: httpx.Client) -> None:
    body = '{"email": "fits@example.com", "name": "Fits", "password": "12345678"}'
    body += " " * (64 * 1024 - len(body))
    response = client.post("/users", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201


@pytest.mark.parametrize("value", ["0", "-1", "ten"])
def test_the_limit_must_be_a_positive_number(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MAX_REQUEST_BODY_BYTES", value)
    with pytest.raises(ValueError, match="max_request_body_bytes"):
        make_settings("sqlite://")


def test_the_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_REQUEST_BODY_BYTES", "2048")
    assert make_settings("sqlite://").max_request_body_bytes == 2048


# -- malformed JSON bodies -----------------------------------------------------------------

USER = b'{"email": "m@example.com", "name": "M", "password": "12345678"}'
MALFORMED_BODIES = {
    "not json": b"{not json",
    "truncated": USER[:-1],
    "trailing garbage": USER + b" garbage",
    "two documents": USER + USER,
    "control character": USER.replace(b'"M"', b'"M\x01"'),
    "raw newline in a string": USER.replace(b'"M"', b'"M\nN"'),
    "invalid UTF-8": USER.replace(b'"M"', b'"\xff\xfe"'),
    "deep nesting": b"[" * 20_000 + b"]" * 20_000,  # past every Python's recursion limit
    "single quotes": USER.replace(b'"', b"'"),
}


@pytest.fixture
def owner(client: httpx.Client) -> dict[str, Any]:
    return new_user(client)


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
@pytest.mark.parametrize("operation", ["POST /users", "POST items", "PATCH user", "PATCH item"])
def test_every_malformed_json_body_is_400(
    client: httpx.Client, owner: dict[str, Any], operation: str, body: bytes
) -> None:
    item = new_item(client, owner["id"])
    method, path = {
        "POST /users": ("POST", "/users"),
        "POST items": ("POST", f"/users/{owner['id']}/items"),
        "PATCH user": ("PATCH", f"/users/{owner['id']}"),
        "PATCH item": ("PATCH", f"/items/{item['id']}"),
    }[operation]
    response = client.request(
        method, path, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}
    assert client.get("/users").json()["total"] == 1
    assert client.get(f"/items/{item['id']}").json() == item


# -- integers in paths and queries ---------------------------------------------------------

NON_CANONICAL = ["+{}", "{}_0", "0{}", "{}.0", " {}", "{} ", "{}e0", "0x{}", "\u0661"]
"""Spellings of an existing id that ``int()`` would accept (``\u0661`` is an Arabic-Indic
one), or that a number would resemble."""


@pytest.mark.parametrize("template", NON_CANONICAL)
def test_ids_in_paths_are_canonical_integers(
    client: httpx.Client, owner: dict[str, Any], template: str
) -> None:
    item = new_item(client, owner["id"])
    for path in (f"/users/{template.format(owner['id'])}", f"/items/{template.format(item['id'])}"):
        response = client.get(path)
        assert response.status_code == 422, path
        assert response.json()["detail"][0]["loc"][0] == "path"
    user_path = f"/users/{template.format(owner['id'])}"
    assert client.patch(user_path, json={"name": "New"}).status_code == 422
    assert client.delete(f"/items/{template.format(item['id'])}").status_code == 422
    assert client.get(f"/items/{item['id']}").json() == item
    assert client.get(f"/users/{owner['id']}").json() == owner


@pytest.mark.parametrize("template", NON_CANONICAL)
@pytest.mark.parametrize("parameter", ["owner_id", "limit", "offset"])
def test_integers_in_queries_are_canonical(
    client: httpx.Client, parameter: str, template: str
) -> None:
    response = client.get("/items", params={parameter: template.format(1)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", parameter]


def test_canonical_integers_are_served(client: httpx.Client, owner: dict[str, Any]) -> None:
    item = new_item(client, owner["id"])
    assert client.get(f"/users/{owner['id']}").status_code == 200
    assert client.get(f"/items/{item['id']}").status_code == 200
    listed = client.get("/items", params={"owner_id": owner["id"], "limit": 10, "offset": 0})
    assert [row["id"] for row in listed.json()["items"]] == [item["id"]]
    assert client.get("/users/0").status_code == 422  # canonical, but below the minimum


# -- what the schema says of cursors and emails --------------------------------------------


def _schema_of(client: httpx.Client, *path: str) -> Any:
    node: Any = client.get("/openapi.json").json()
    for key in path:
        node = node[key]
    return node


def _cursor_schema(client: httpx.Client) -> dict[str, Any]:
    """The schema of ``cursor`` as a string (it may also be absent)."""
    parameters = _schema_of(client, "paths", "/items", "get", "parameters")
    cursor = next(p for p in parameters if p["name"] == "cursor")
    text: dict[str, Any] = next(s for s in cursor["schema"]["anyOf"] if s["type"] == "string")
    return text


def test_an_empty_cursor_is_422_as_the_schema_says(client: httpx.Client) -> None:
    schema = _cursor_schema(client)
    assert schema["minLength"] == 1
    assert re.search(schema["pattern"], "") is None
    for path in ("/items", "/users"):
        response = client.get(path, params={"cursor": ""})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("text", ["!!!!", "YWZ0ZXI6MQ==", "a" * 1025])
def test_a_cursor_outside_the_schema_is_422(client: httpx.Client, text: str) -> None:
    schema = _cursor_schema(client)
    assert re.search(schema["pattern"], text) is None or len(text) > schema["maxLength"]
    assert client.get("/items", params={"cursor": text}).status_code == 422


SPECIAL_USE = [
    "ada@example.test",
    "ada@LOCALHOST",
    "ada@printer.local",
    "ada@x.onion",
    "a@b.invalid",
]


@pytest.mark.parametrize("email", SPECIAL_USE)
def test_emails_in_special_use_domains_are_422_as_the_schema_says(
    client: httpx.Client, owner: dict[str, Any], email: str
) -> None:
    for model in ("UserCreate", "UserUpdate"):
        schema = _schema_of(client, "components", "schemas", model, "properties", "email")
        assert re.search(schema["pattern"], email) is None, model
        assert re.search(schema["pattern"], "ada@example.com") is not None
        assert re.search(schema["pattern"], "test@test.example.com") is not None
    created = client.post("/users", json={"email": email, "name": "A", "password": "12345678"})
    assert created.status_code == 422
    assert client.patch(f"/users/{owner['id']}", json={"email": email}).status_code == 422
    assert client.get(f"/users/{owner['id']}").json() == owner


# -- methods a path does not serve ---------------------------------------------------------

PROBED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


@pytest.mark.parametrize(
    "path",
    [
        "/users",
        "/users/{user}",
        "/users/{user}/items",
        "/items",
        "/items/{item}",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ],
)
def test_a_405_names_every_method_of_the_path(
    client: httpx.Client, owner: dict[str, Any], path: str
) -> None:
    item = new_item(client, owner["id"])
    url = path.format(user=owner["id"], item=item["id"])
    options = client.options(url)
    assert options.status_code == 405
    allow = {method.strip() for method in options.headers["allow"].split(",")}
    # What the path serves, asked method by method (DELETE last: it removes the row).
    served = {
        method
        for method in sorted(PROBED_METHODS, key=lambda method: method == "DELETE")
        if client.request(method, url, json={}).status_code != 405
    }
    assert allow == served
    assert client.put(url, json={}).headers["allow"] == options.headers["allow"]


# -- integers in bodies --------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, "450", "", 4.5, None, [450]])
def test_a_price_is_a_json_integer(
    client: httpx.Client, owner: dict[str, Any], value: object
) -> None:
    item = new_item(client, owner["id"], price_cents=450)
    created = client.post(f"/users/{owner['id']}/items", json={"name": "x", "price_cents": value})
    assert created.status_code == 422
    assert created.json()["detail"][0]["loc"] == ["body", "price_cents"]
    updated = client.patch(f"/items/{item['id']}", json={"price_cents": value})
    assert updated.status_code == 422
    assert client.get(f"/items/{item['id']}").json() == item
    assert client.get("/items").json()["total"] == 1


def test_an_integral_number_is_an_integer_as_in_json_schema(
    client: httpx.Client, owner: dict[str, Any]
) -> None:
    created = client.post(f"/users/{owner['id']}/items", json={"name": "x", "price_cents": 450.0})
    assert created.status_code == 201
    assert created.json()["price_cents"] == 450
