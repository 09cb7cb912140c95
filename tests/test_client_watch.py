"""`ClientWatch`: telling that a client went away never takes a message from the app."""

from __future__ import annotations

from collections import deque

import anyio
import pytest
from starlette.types import Message

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
