"""A TCP proxy in front of PostgreSQL that cuts one COMMIT, for the unknown-outcome tests.

Armed, it watches what the client sends for the next ``COMMIT`` (psycopg and asyncpg both
send it as a simple query). With ``landed=True`` the COMMIT reaches the server, which
commits, and the server's answer is dropped; with ``landed=False`` the COMMIT never reaches
the server, which rolls back when the connection closes. Either way the client's connection
is closed under it: what the client sees is the same, which is the point.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class CommitCutter:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._armed: bool | None = None  # None: off; else whether the COMMIT lands
        self._lock = threading.Lock()
        self.cut = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CommitCutter:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _close(self._listener)  # shutdown() wakes the thread blocked in accept()
        for sock in self._sockets:
            _close(sock)
        self._thread.join(5)

    def arm(self, *, landed: bool) -> None:
        """Cut the next COMMIT any client sends."""
        with self._lock:
            self._armed = landed
        self.cut.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._sockets += [client, server]
            cutting = threading.Event()
            threading.Thread(
                target=self._upstream, args=(client, server, cutting), daemon=True
            ).start()
            threading.Thread(
                target=self._downstream, args=(server, client, cutting), daemon=True
            ).start()

    def _upstream(
        self, client: socket.socket, server: socket.socket, cutting: threading.Event
    ) -> None:
        while data := _recv(client):
            if b"COMMIT" in data:
                with self._lock:
                    landed, self._armed = self._armed, None
                if landed is False:
                    self._cut(client, server)
                    return
                if landed:
                    cutting.set()  # the answer is dropped: the connection closes first
            try:
                server.sendall(data)
            except OSError:
                return
        _close(server)

    def _downstream(
        self, server: socket.socket, client: socket.socket, cutting: threading.Event
    ) -> None:
        while data := _recv(server):
            if cutting.is_set():
                self._cut(client, server)
                return
            try:
                client.sendall(data)
            except OSError:
                return
        _close(client)

    def _cut(self, client: socket.socket, server: socket.socket) -> None:
        # Marked first: once the sockets close, the app may answer (and the test look at
        # `cut`) before this thread runs again on a loaded machine.
        self.cut.set()
        _close(client)
        _close(server)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
