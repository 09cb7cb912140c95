"""Connection slots: requests wait for a connection here, in arrival order, and are turned away
at once when the wait could not end in time.

A request waits at most ``pool_timeout`` for a slot, then gets 503 with ``Retry-After``. Under
overload (2,000 clients on a pool of 5) most of them wait the whole ``pool_timeout`` for that
503: the client learns nothing for 5 s, and its retry, sent later, meets a queue just as long.

While requests wait, slots come back at the rate the pool drains the queue: the interval
between two releases, averaged over the queue's life (`DRAIN_SMOOTHING`), is the time each
place in the queue costs. A request that arrives behind ``n`` waiters can expect a slot after about
``(n + 1) * interval``; when that is past ``pool_timeout`` it would only time out, so with
``shed_overload`` it is answered 503 at once (it is *shed*). So is a request already waiting
at the end of the queue once the drain rate says it would reach its ``pool_timeout`` first
(a burst that arrived before the rate was measured). The others keep their place and their
order; nothing is shed while no one waits, nor before the pool has been seen draining the
present queue (two releases while requests wait). A shed request's ``Retry-After`` is the
time the queue it met needs to drain (at least ``retry_after``), so that clients that honour
it come back when there is room.
"""

from __future__ import annotations

import math
import time

import anyio
from anyio.lowlevel import checkpoint

from ._errors import DatabaseBusyError
from ._policy import BUSY_DETAIL

DRAIN_SMOOTHING = 0.2
"""Weight of the latest interval between two releases in the drain-rate average."""


class _Waiter:
    """A request waiting for a slot."""

    __slots__ = ("deadline", "scope", "shed")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.scope: anyio.CancelScope | None = None
        self.shed: float | None = None
        """When shed: the seconds its place in the queue would have taken."""


class ConnectionSlots:
    """The connection slots of one pool: taken in arrival order, shed under overload."""

    __slots__ = (
        "_interval",
        "_last_release",
        "_queue",
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
        self._interval = 0.0
        """Seconds between two releases while this queue lasts (0.0: not measured yet)."""
        self._last_release: float | None = None
        self.shed = 0
        """Requests answered 503 early because the queue could not drain in time."""
        self._shedding = shed
        self._shed_pending = 0
        """Waiters shed whose task has not yet left the semaphore's queue."""

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._queue)

    def expected_wait(self) -> float:
        """Seconds a request arriving now would wait for a slot, by the drain rate seen."""
        return (len(self._queue) + 1) * self._interval

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
        expected = self.expected_wait()
        if self._shedding and expected > max_wait:
            self.shed += 1
            await checkpoint()  # the shed request lets others run, as a waiting one would
            raise _busy(retry_after, expected)
        waiting_since = time.perf_counter()
        waiter = _Waiter(waiting_since + max_wait)
        self._queue[waiter] = None
        try:
            with anyio.move_on_after(max_wait) as waiter.scope:
                await self._semaphore.acquire()
                return time.perf_counter() - waiting_since
        finally:
            if waiter.shed is None:
                del self._queue[waiter]
            else:
                self._shed_pending -= 1
        raise _busy(retry_after, waiter.shed or 0.0)

    def release(self) -> None:
        if self._queue:
            now = time.perf_counter()
            last = self._last_release
            if last is not None:
                interval = now - last
                # The first interval of a queue stands alone: one measured under an earlier
                # queue (other queries, another load) says nothing about this one.
                previous = self._interval
                self._interval = (
                    interval if not previous else previous + DRAIN_SMOOTHING * (interval - previous)
                )
                if self._shedding:
                    self._shed_tail(now)
            self._last_release = now
        else:
            # The queue is gone: the next interval would measure arrivals, not the pool.
            self._last_release = None
            self._interval = 0.0
        self._semaphore.release()

    def _shed_tail(self, now: float) -> None:
        """Answer now the last waiters that would reach their deadline before a slot: they
        would only time out. Those ahead of them keep their place and their order."""
        # Waiters not yet handed a slot (nor shed); this release hands one to the first.
        ahead = self._semaphore.statistics().tasks_waiting - self._shed_pending - 1
        while ahead > 0 and self._queue:
            tail = next(reversed(self._queue))
            expected = ahead * self._interval
            if expected <= tail.deadline - now:
                return
            del self._queue[tail]
            tail.shed = expected
            assert tail.scope is not None
            tail.scope.cancel()
            self.shed += 1
            self._shed_pending += 1
            ahead -= 1


def _busy(retry_after: int, expected: float) -> DatabaseBusyError:
    # A shed request is told when the queue it met should have drained.
    seconds = max(retry_after, math.ceil(expected))
    return DatabaseBusyError(503, BUSY_DETAIL, headers={"Retry-After": str(seconds)})
