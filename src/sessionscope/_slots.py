"""Connection slots: requests wait for a connection here, in arrival order, and are turned away
at once when the wait could not end in time.

A request waits at most ``pool_timeout`` for a slot, then gets 503 with ``Retry-After``. Under
overload (2,000 clients on a pool of 5) most of them wait the whole ``pool_timeout`` for that
503: the client learns nothing for 5 s, and its retry, sent later, meets a queue just as long.

While requests wait, slots come back at the rate the pool drains the queue: the slots given
back over the last `DRAIN_WINDOW` seconds tell the time each place in the queue costs. A
request that arrives behind ``n`` waiters can expect a slot after about ``n + 1`` such
intervals; when that is past ``pool_timeout`` it would only time out, so with
``shed_overload`` it is answered 503 at once (it is *shed*). So is a request already waiting
at the end of the queue once the drain rate says it would reach its ``pool_timeout`` first
(a burst that arrived before the rate was measured). The others keep their place and their
order; nothing is shed while no one waits, nor before the present queue has lasted
`DRAIN_WINDOW`. A shed request's ``Retry-After`` is ``pool_timeout`` (at least
``retry_after``): the queue it met cannot drain sooner, and clients that honour it come back
when there is room instead of adding to the queue.
"""

from __future__ import annotations

import math
import time
from collections import deque

import anyio
from anyio.lowlevel import checkpoint

from ._errors import DatabaseBusyError
from ._policy import BUSY_DETAIL

DRAIN_WINDOW = 0.5
"""Seconds over which the drain rate is measured: the slots given back in the last this many
seconds, once the queue has lasted that long. A burst that queues at once sheds nothing in
its first half second, and a stall of the event loop weighs only for its share of it."""


class _Waiter:
    """A request waiting for a slot."""

    __slots__ = ("deadline", "scope", "shed")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.scope: anyio.CancelScope | None = None
        self.shed = False


class ConnectionSlots:
    """The connection slots of one pool: taken in arrival order, shed under overload."""

    __slots__ = (
        "_queue",
        "_queued_since",
        "_releases",
        "_semaphore",
        "_shed_pending",
        "_shedding",
        "capacity",
        "shed",
    )

    def __init__(self, capacity: int, *, shed: bool) -> None:
        self.capacity = capacity
        self._semaphore = anyio.Semaphore(capacity)
        self._queue: dict[_Waiter, None] = {}
        """The waiting requests in arrival order (a dict: O(1) removal anywhere)."""
        self._queued_since = 0.0
        """When the present queue began."""
        self._releases: deque[float] = deque()
        """When slots were given back while this queue lasts, over the last `DRAIN_WINDOW`."""
        self.shed = 0
        """Requests answered 503 early because the queue could not drain in time."""
        self._shedding = shed
        self._shed_pending = 0
        """Waiters shed whose task has not yet left the semaphore's queue."""

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._queue)

    def _interval(self, now: float) -> float:
        """Seconds each place in the present queue costs (0.0: not measured yet)."""
        releases = self._releases
        since = now - DRAIN_WINDOW
        while releases and releases[0] < since:
            releases.popleft()
        if self._queued_since > since:
            return 0.0  # the queue is younger than the window
        return DRAIN_WINDOW / len(releases) if releases else DRAIN_WINDOW

    def expected_wait(self) -> float:
        """Seconds a request arriving now would wait for a slot, by the drain rate seen."""
        return (len(self._queue) + 1) * self._interval(time.perf_counter())

    async def acquire(self, max_wait: float, retry_after: int) -> float:
        """Wait up to ``max_wait`` seconds for a slot; 503 with ``Retry-After`` after, or
        early when the queue cannot drain in time. Returns the seconds waited (0.0 when one
        was free)."""
        try:
            # A free slot means nobody waits (a released slot goes straight to the first
            # waiter), so taking it keeps arrival order; no timer to set up.
            self._semaphore.acquire_nowait()
        except anyio.WouldBlock:
            pass
        else:
            return 0.0
        waiting_since = time.perf_counter()
        if self._queue:
            if self._shedding and self.expected_wait() > max_wait:
                self.shed += 1
                await checkpoint()  # the shed request lets others run, as a waiting one would
                raise _busy(retry_after, max_wait)
        else:
            self._queued_since = waiting_since
            self._releases.clear()
        waiter = _Waiter(waiting_since + max_wait)
        self._queue[waiter] = None
        try:
            with anyio.move_on_after(max_wait) as waiter.scope:
                await self._semaphore.acquire()
                return time.perf_counter() - waiting_since
        finally:
            if not waiter.shed:
                del self._queue[waiter]
            else:
                self._shed_pending -= 1
        raise _busy(retry_after, max_wait if waiter.shed else 0.0)

    def release(self) -> None:
        if self._queue:
            now = time.perf_counter()
            self._releases.append(now)
            if self._shedding:
                self._shed_tail(now)
        self._semaphore.release()

    def _shed_tail(self, now: float) -> None:
        """Answer now the last waiters that would reach their deadline before a slot: they
        would only time out. Those ahead of them keep their place and their order."""
        interval = self._interval(now)
        if not interval:
            return
        # Waiters not yet handed a slot (nor shed); this release hands one to the first.
        ahead = self._semaphore.statistics().tasks_waiting - self._shed_pending - 1
        while ahead > 0 and self._queue:
            tail = next(reversed(self._queue))
            if ahead * interval <= tail.deadline - now:
                return
            del self._queue[tail]
            tail.shed = True
            assert tail.scope is not None
            tail.scope.cancel()
            self.shed += 1
            self._shed_pending += 1
            ahead -= 1


def _busy(retry_after: int, max_wait: float) -> DatabaseBusyError:
    # A shed request is told to come back once the queue it met has had time to drain.
    seconds = max(retry_after, math.ceil(max_wait))
    return DatabaseBusyError(503, BUSY_DETAIL, headers={"Retry-After": str(seconds)})
