"""Connection pools that keep their overflow connections warm for a while.

SQLAlchemy's `QueuePool` closes a connection opened beyond ``pool_size`` as soon as it is
returned while ``pool_size`` others sit idle. Under steady load the number of connections in
use swings past ``pool_size`` many times a second (a single event loop runs requests in
bursts), so the pool opens and closes overflow connections continuously: on PostgreSQL each
one is a new server process and a TLS/auth handshake. Measured with the benchmark items
service at concurrency 64, that churn opened about a hundred connections a second and cost
about 40 % of the throughput.

These pools keep a returned overflow connection as a *spare* instead, reuse spares (newest
first) before opening a new connection, and close a spare once it has been idle for
``overflow_idle_timeout`` seconds (one at a time, whenever a connection is taken or
returned). The limit is unchanged: at most ``pool_size + max_overflow`` connections exist.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool
from sqlalchemy.util import queue as sqla_queue

DEFAULT_OVERFLOW_IDLE_TIMEOUT = 30.0


class KeepWarmQueuePool(QueuePool):
    """`QueuePool` whose overflow connections are closed after an idle time, not on return."""

    # SQLAlchemy names a pool's logger after its class's module: ours would log "Pool
    # disposed..." under the `sessionscope` logger, shown wherever an app logs sessionscope at
    # INFO. The pool's messages stay where SQLAlchemy's own pools put them (`echo_pool`).
    _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"

    def __init__(
        self,
        creator: Any,
        overflow_idle_timeout: float = DEFAULT_OVERFLOW_IDLE_TIMEOUT,
        **kw: Any,
    ) -> None:
        super().__init__(creator, **kw)
        self._overflow_idle_timeout = overflow_idle_timeout
        self._spares: deque[tuple[ConnectionPoolEntry, float]] = deque()
        self._spares_lock = threading.Lock()

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            self._pool.put(record, False)
        except sqla_queue.Full:
            with self._spares_lock:
                self._spares.append((record, time.monotonic()))
        self._close_idle_spares()

    def _do_get(self) -> ConnectionPoolEntry:
        self._close_idle_spares()
        try:
            return self._pool.get(False)
        except sqla_queue.Empty:
            pass
        with self._spares_lock:
            spare = self._spares.pop()[0] if self._spares else None
        if spare is not None:
            return spare
        return super()._do_get()

    def _close_idle_spares(self) -> None:
        """Close the oldest spare if it has been idle too long: one per checkout or return,
        so that no single request pays for closing a burst's worth of connections."""
        if not self._spares:
            return
        idle_since = time.monotonic() - self._overflow_idle_timeout
        with self._spares_lock:
            if not (self._spares and self._spares[0][1] <= idle_since):
                return
            record = self._spares.popleft()[0]
        try:
            record.close()
        finally:
            self._dec_overflow()

    def spares(self) -> int:
        """Overflow connections kept idle for reuse."""
        return len(self._spares)

    def checkedin(self) -> int:
        return super().checkedin() + len(self._spares)

    def checkedout(self) -> int:
        return super().checkedout() - len(self._spares)

    def recreate(self) -> KeepWarmQueuePool:
        pool = super().recreate()
        assert isinstance(pool, KeepWarmQueuePool)
        pool._overflow_idle_timeout = self._overflow_idle_timeout
        return pool

    def dispose(self) -> None:
        with self._spares_lock:
            spares, self._spares = list(self._spares), deque()
        for record, _ in spares:
            record.close()
        super().dispose()


class AsyncKeepWarmQueuePool(KeepWarmQueuePool, AsyncAdaptedQueuePool):
    """The asyncio twin of `KeepWarmQueuePool`, for `create_async_engine`."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"
