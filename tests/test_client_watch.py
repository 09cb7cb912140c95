"""`ClientWatch`: telling that a client went away never takes a message from the app."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import anyio
import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from sessionscope._disconnect import ClientWatch

pytestmark = pytest.mark.anyio

BODY: Message = {"type": "http.request", "body": b"chunk", "more_body": True}
DISCONNECT: Message = {"type": "http.disconnect"}


class Server:
    """A server's ``receive`` as uvicorn's behaves: a message that is there comes back
    without a pause; otherwise it waits for the next one."""

    def __init__(self, *ready: Message) -> None:
        self.messages = deque(ready)
        self.arrived = anyio.Event()

    async def receive(self) -> Message:
        while not self.messages:
            await self.arrived.wait()
            self.arrived = anyio.Event()
        return self.messages.popleft()

    def send(self, message: Message) -> None:
        self.messages.append(message)
        self.arrived.set()


async def test_a_waiting_client_is_not_gone_and_nothing_is_taken() -> None:
    server = Server()
    watch = ClientWatch(server.receive)
    assert not await watch.client_gone()
    server.send(BODY)
    assert await watch.receive() == BODY


async def test_a_body_message_found_while_asking_goes_to_the_app() -> None:
    server = Server(BODY, DISCONNECT)
    watch = ClientWatch(server.receive)
    assert not await watch.client_gone()
    assert not await watch.client_gone()  # asks no further while the message is held
    assert await watch.receive() == BODY
    assert await watch.client_gone()


async def test_a_disconnect_is_found_and_still_handed_to_the_app() -> None:
    watch = ClientWatch(Server(DISCONNECT).receive)
    assert await watch.client_gone()
    assert await watch.receive() == DISCONNECT


async def test_a_disconnect_the_app_read_is_remembered() -> None:
    server = Server(BODY, DISCONNECT)
    watch = ClientWatch(server.receive)
    assert await watch.receive() == BODY
    assert await watch.receive() == DISCONNECT
    assert await watch.client_gone()  # without asking the server again
    assert not server.messages


class _AwaitableOf:
    def __init__(self, iterator: Any) -> None:
        self.iterator = iterator

    def __await__(self) -> Any:
        return self.iterator


async def test_a_receive_that_is_not_a_coroutine_is_looked_at_in_a_cancelled_scope() -> None:
    server = Server()
    watch = ClientWatch(lambda: _AwaitableOf(server.receive().__await__()))
    assert not await watch.client_gone()
    server.send(DISCONNECT)
    assert await watch.client_gone()
    assert await watch.receive() == DISCONNECT


# -- uvicorn's own receive() (h11 and httptools), over a real socket ------------------------


async def watched_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    watch = ClientWatch(receive)
    seen: list[Any] = [await watch.client_gone()]  # the body is there: taken, and held
    seen.append((await watch.receive())["body"].decode())
    if scope["path"] == "/wait-for-gone":
        for _ in range(500):  # the client closes its socket; uvicorn notices soon after
            if await watch.client_gone():
                break
            await anyio.sleep(0.01)
        seen.append(watch.gone)
        seen.append((await watch.receive())["type"])
        RESULTS.append(seen)
        FINISHED[0].set()
        return
    seen.append(await watch.client_gone())  # the client waits: its receive() would wait
    body = json.dumps(seen).encode()
    length = str(len(body)).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]}
    )
    await send({"type": "http.response.body", "body": body})


RESULTS: list[list[Any]] = []
FINISHED: list[anyio.Event] = []


def request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_uvicorn_receive_is_looked_at_without_losing_a_message(http: str) -> None:
    # No WebSocket protocol: older uvicorn releases import websockets' deprecated legacy API.
    config = uvicorn.Config(
        watched_app,
        host="127.0.0.1",
        port=0,
        http=http,
        ws="none",
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    with anyio.fail_after(10):
        while not server.started:
            assert not serving.done(), serving.exception()
            await anyio.sleep(0.01)
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            await client.send(request("/", b"first"))
            answer = b""
            while not answer.endswith(b"]"):
                answer += await client.receive()
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == [False, "first", False]
            # The same connection serves the next request: the cancelled look left no waiter.
            await client.send(request("/", b"second"))
            answer = b""
            while not answer.endswith(b"]"):
                answer += await client.receive()
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == [False, "second", False]
        RESULTS.clear()
        FINISHED[:] = [anyio.Event()]
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            await client.send(request("/wait-for-gone", b"last"))
        with anyio.fail_after(10):
            await FINISHED[0].wait()
        assert RESULTS == [[False, "last", True, "http.disconnect"]]
    finally:
        server.should_exit = True
        await serving


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_look_in_a_cancelled_scope_takes_nothing_either() -> None:
    server = Server()
    watch = ClientWatch(server.receive)
    assert not await watch.client_gone()
    server.send(BODY)
    assert await watch.receive() == BODY
    server.send(DISCONNECT)
    assert await watch.client_gone()
    assert await watch.receive() == DISCONNECT
