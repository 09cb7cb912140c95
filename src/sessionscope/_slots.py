"""Connection slots: requests wait for a connection here, in arrival order, and are turned away
at once when the wait could not end in time.

A request waits at most ``pool_timeout`` for a slot, then gets 503 with ``Retry-After``. Under
overload (2,000 clients on a pool of 5) most of them wait the whole ``pool_timeout`` for that
503: the client learns nothing for 5 s, and its retry, sent later, meets a queue just as long.

While requests wait, slots come back at the rate the pool drains the queue: the interval
between two releases, averaged over the queue's life (`DRAIN_SMOOTHING`), is the time each
place in the queue costs. A request that arrives behind ``n`` waiters can expect a slot after about
``(n + 1) * interval``; when that is past ``pool_timeout`` it would only time out, so with
``shed_overload`` it is answered 503 at once (it is *shed*). Requests already waiting keep
their place and their order; nothing is shed while no one waits, nor before the pool has been
seen draining the present queue (two releases while requests wait).
"""

from __future__ import annotations

import time

import anyio
from anyio.lowlevel import checkpoint

from ._errors import DatabaseBusyError
from ._policy import BUSY_DETAIL

DRAIN_SMOOTHING = 0.2
"""Weight of the latest interval between two releases in the drain-rate average."""


class ConnectionSlots:
    """The connection slots of one pool: taken in arrival order, shed under overload."""

    __slots__ = (
        "_interval",
        "_last_release",
        "_semaphore",
        "_shedding",
        "_waiting",
        "capacity",
        "shed",
    )

    def __init__(self, capacity: int, *, shed: bool) -> None:
        self.capacity = capacity
        self._semaphore = anyio.Semaphore(capacity)
        self._waiting = 0
        self._interval = 0.0
        """Seconds between two releases while this queue lasts (0.0: not measured yet)."""
        self._last_release: float | None = None
        self.shed = 0
        """Requests answered 503 at once because the queue could not drain in time."""
        self._shedding = shed

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return self._waiting

    def expected_wait(self) -> float:
        """Seconds a request arriving now would wait for a slot, by the drain rate seen."""
        return (self._waiting + 1) * self._interval

    async def acquire(self, max_wait: float, retry_after: int) -> float:
        """Wait up to ``max_wait`` seconds for a slot; 503 with ``Retry-After`` after, or at
        once when the queue cannot drain in time. Returns the seconds waited (0.0 when one was
        free)."""
        try:
            # A free slot means nobody waits (a released slot goes straight to the first
            # waiter), so taking it keeps arrival order; no timer to set up.
            self._semaphore.acquire_nowait()
        except anyio.WouldBlock:
            pass
        else:
            return 0.0
        if self._shedding and self.expected_wait() > max_wait:
            self.shed += 1
            await checkpoint()  # the shed request still lets others run, like a waiting one
            raise _busy(retry_after)
        waiting_since = time.perf_counter()
        self._waiting += 1
        try:
            with anyio.move_on_after(max_wait):
                await self._semaphore.acquire()
                return time.perf_counter() - waiting_since
        finally:
            self._waiting -= 1
        raise _busy(retry_after)

    def release(self) -> None:
        if self._waiting:
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
            self._last_release = now
        else:
            # The queue is gone: the next interval would measure arrivals, not the pool.
            self._last_release = None
            self._interval = 0.0
        self._semaphore.release()


def _busy(retry_after: int) -> DatabaseBusyError:
    return DatabaseBusyError(503, BUSY_DETAIL, headers={"Retry-After": str(retry_after)})
