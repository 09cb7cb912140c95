"""Connection slots: requests wait for a connection here, in arrival order, and are turned away
at once when the wait could not end in time.

A request waits at most ``pool_timeout`` for a slot, then gets 503 with ``Retry-After``. Under
overload (2,000 clients on a pool of 5) most of them wait the whole ``pool_timeout`` for that
503: the client learns nothing for 5 s, and its retry, sent later, meets a queue just as long.

While requests wait, slots come back at the rate the pool drains the queue. The slots given
back while requests waited are counted per half second (`BUCKET`); the best count of the last
five seconds (`HISTORY`) is the rate the pool has shown it can keep, and tells the time each
place in a queue costs at least. A request that arrives behind ``n`` waiters can expect a slot
after about ``n + 1`` such intervals; when even that is past ``pool_timeout`` it would only
time out, so with ``shed_overload`` it is answered 503 at once (it is *shed*). So is a request
already waiting at the end of the queue once the rate says it would reach its
``pool_timeout`` first (a burst that queued before the rate was known). The others keep their
place and their order. Nothing is shed before the pool has drained a queue for a whole half
second, and a moment when it drains slowly (the event loop busy with a burst of arrivals)
does not count against it: the best recent rate does.

A shed request's ``Retry-After`` is ``pool_timeout`` (at least ``retry_after``): the queue it
met cannot drain sooner, and clients that honour it come back when there is room instead of
adding to the queue.
"""

from __future__ import annotations

import time
from collections import deque

import anyio
from anyio.lowlevel import checkpoint

from ._errors import DatabaseBusyError
from ._policy import BUSY_DETAIL, busy_retry_after

BUCKET = 0.5
"""Seconds of each count of slots given back while requests waited."""
HISTORY = 10
"""Counts kept: the drain rate is the best of the last this many buckets (5 s)."""


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
        "_bucket_count",
        "_bucket_start",
        "_counts",
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
        self._bucket_start = 0.0
        self._bucket_count = 0
        self._counts: deque[int] = deque(maxlen=HISTORY)
        """Slots given back while requests waited, per `BUCKET`, the latest `HISTORY`."""
        self.shed = 0
        """Requests answered 503 early because the queue could not drain in time."""
        self._shedding = shed
        self._shed_pending = 0
        """Waiters shed whose task has not yet left the semaphore's queue."""

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._queue)

    def _interval(self) -> float:
        """Seconds each place in a queue costs at the best rate the pool has shown lately
        (0.0: it has not been seen draining a queue for a whole bucket)."""
        best = max(self._counts, default=0)
        return BUCKET / best if best else 0.0

    def _count_release(self, now: float) -> None:
        elapsed = int((now - self._bucket_start) / BUCKET)
        if elapsed:
            if elapsed >= HISTORY:
                self._counts.clear()
            else:
                self._counts.append(self._bucket_count)
                self._counts.extend([0] * (elapsed - 1))
            self._bucket_start += elapsed * BUCKET
            self._bucket_count = 0
        self._bucket_count += 1

    def expected_wait(self) -> float:
        """Seconds a request arriving now would wait for a slot, by the drain rate seen."""
        return (len(self._queue) + 1) * self._interval()

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
        if self._shedding and self.expected_wait() > max_wait:
            self.shed += 1
            await checkpoint()  # the shed request lets others run, as a waiting one would
            raise _busy(retry_after, max_wait)
        waiting_since = time.perf_counter()
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
            self._count_release(now)
            if self._shedding:
                self._shed_tail(now)
        self._semaphore.release()

    def _shed_tail(self, now: float) -> None:
        """Answer now the last waiters that would reach their deadline before a slot: they
        would only time out. Those ahead of them keep their place and their order."""
        interval = self._interval()
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
    seconds = busy_retry_after(retry_after, max_wait)
    return DatabaseBusyError(503, BUSY_DETAIL, headers={"Retry-After": str(seconds)})
