"""Whether a request's client has gone away, without taking a message the app still needs.

uvicorn does not cancel a request whose client disconnected: the handler runs on, and its
unit of work would commit for nobody. The server tells the app through ``receive``: once the
client is gone, uvicorn's ``receive()`` returns ``http.disconnect`` at once, without a pause,
and with the body read and the client still there, it waits. `ClientWatch` passes the app's
``receive`` through, noting a disconnect the app reads, and answers `client_gone` by calling
``receive()`` in a cancelled scope, as Starlette's ``Request.is_disconnected()`` does: a
message that is there comes back, a wait ends at once. Unlike Starlette's, a body message got
that way is kept and handed to the app's next ``receive()``, so nothing the app reads is lost.
A server whose ``receive()`` pauses even when a message is there is never found gone: its
units commit, as without the check.
"""

from __future__ import annotations

import anyio
from starlette.types import Message, Receive


class ClientWatch:
    """A request's ``receive``, watched for ``http.disconnect``."""

    __slots__ = ("_held", "_receive", "gone")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._held: Message | None = None
        self.gone = False

    async def receive(self) -> Message:
        held = self._held
        if held is not None:
            self._held = None
            return held
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.gone = True
        return message

    async def client_gone(self) -> bool:
        """Whether the client has disconnected by now; never waits for it."""
        if self.gone or self._held is not None:
            return self.gone
        with anyio.CancelScope() as scope:
            # A message already there is returned without a pause; otherwise the cancelled
            # scope ends the wait at once, and no message was taken.
            scope.cancel()
            message = await self._receive()
            self._held = message
            self.gone = message["type"] == "http.disconnect"
        return self.gone
