"""Whether a request's client has gone away, without taking a message the app still needs.

uvicorn does not cancel a request whose client disconnected: the handler runs on, and its
unit of work would commit for nobody. The server tells the app through ``receive``: once the
client is gone, uvicorn's ``receive()`` returns ``http.disconnect`` at once, without a pause,
and with the body read and the client still there, it waits. `ClientWatch` passes the app's
``receive`` through, noting a disconnect the app reads, and answers `client_gone` by looking
whether ``receive()`` has a message at once: a message that is there is taken, a wait is
ended where it starts. A body message got that way is kept and handed to the app's next
``receive()``, so nothing the app reads is lost.

On asyncio the look costs no trip through the event loop: the coroutine of ``receive()`` is
stepped once by hand. When it returns, the message was there. When it suspends instead, it is
cancelled where it waits, as a task's cancellation would: the future it waits on is cancelled
and ``CancelledError`` is thrown in at that point (uvicorn's h11 and httptools ``receive()``
wait in ``asyncio.Event.wait()``, whose ``finally`` takes its waiter back off the event; the
``100 Continue`` it may write before is written by any first ``receive()``). That is what
Starlette's ``Request.is_disconnected()`` does with a cancelled scope, without the scope's
wake-up of the task. A ``receive`` that is not a coroutine function's (a server's own awaitable),
or another event loop library, gets the cancelled-scope look itself. A server whose
``receive()`` pauses even when a message is there is never found gone: its units commit, as
without the check.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine
from typing import Any

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
        awaitable = self._receive()
        if type(awaitable) is types.CoroutineType and _on_asyncio():
            message = _step_once(awaitable)
        else:
            message = await _in_cancelled_scope(awaitable)
        if message is not None:
            self._held = message
            self.gone = message["type"] == "http.disconnect"
        return self.gone


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _step_once(coroutine: Coroutine[Any, Any, Message]) -> Message | None:
    """The message ``coroutine`` returns without suspending; None when it would wait (it is
    then cancelled where it waits)."""
    try:
        waited_on = coroutine.send(None)
    except StopIteration as returned:
        message: Message = returned.value
        return message
    if asyncio.isfuture(waited_on):
        waited_on.cancel()
    try:
        coroutine.throw(asyncio.CancelledError())
    except asyncio.CancelledError:
        return None
    except StopIteration as returned:
        # It answered its cancellation with a message: the message was taken.
        taken: Message = returned.value
        return taken
    # It waits again while being cancelled: it cannot be driven further without the event
    # loop, and is closed.
    coroutine.close()
    return None


async def _in_cancelled_scope(awaitable: Any) -> Message | None:
    with anyio.CancelScope() as scope:
        # A message already there is returned without a pause; otherwise the cancelled
        # scope ends the wait at once, and no message was taken.
        scope.cancel()
        message: Message = await awaitable
        return message
    return None
