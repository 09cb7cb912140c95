"""Load for the drills: concurrent writers and readers over httpx, and a bare HTTP/1.1 client
(asyncio streams) for thousands of sockets at once and for clients that walk away
mid-request."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

REQUEST_TIMEOUT = 15.0
"""A request that has no answer by then counts as hung."""


@dataclass
class Tally:
    """What a load saw: statuses, failures and the writes the service acknowledged."""

    statuses: Counter[int] = field(default_factory=Counter)
    without_retry_after: int = 0
    transport_errors: Counter[str] = field(default_factory=Counter)
    hung: int = 0
    details: Counter[str] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    latencies: dict[int, list[float]] = field(default_factory=dict)
    success_times: list[float] = field(default_factory=list)

    def record(self, response: httpx.Response, seconds: float) -> None:
        self.statuses[response.status_code] += 1
        self.latencies.setdefault(response.status_code, []).append(seconds)
        if response.is_success:
            self.success_times.append(time.monotonic())
            return
        if response.status_code == 503 and "retry-after" not in response.headers:
            self.without_retry_after += 1
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:80]
        self.details[f"{response.status_code} {detail}"] += 1

    def error(self, error: Exception) -> None:
        if isinstance(error, httpx.TimeoutException):
            self.hung += 1
        self.transport_errors[type(error).__name__] += 1

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first 2xx after it, if there was one."""
        later = [when for when in self.success_times if when > moment]
        return min(later) - moment if later else None

    @property
    def server_errors(self) -> int:
        """5xx answers other than 503."""
        return sum(
            count for status, count in self.statuses.items() if status >= 500 and status != 503
        )

    @property
    def failures(self) -> int:
        """Every request that did not get a 2xx."""
        other = sum(count for status, count in self.statuses.items() if not 200 <= status < 300)
        return other + sum(self.transport_errors.values())

    def summary(self) -> str:
        statuses = ", ".join(
            f"{status}: {count}" for status, count in sorted(self.statuses.items())
        )
        errors = ", ".join(f"{name}: {count}" for name, count in self.transport_errors.items())
        return statuses + (f"; transport errors {errors}" if errors else "")


async def create_user(client: httpx.AsyncClient, email: str) -> int:
    """A user for the load to write items for (set-up: a 503 is retried a few times)."""
    for _ in range(10):
        response = await client.post(
            "/users", json={"email": email, "name": "Drill", "password": "drill-password"}
        )
        if response.status_code != 503:
            break
        await asyncio.sleep(0.5)
    response.raise_for_status()
    return int(response.json()["id"])


async def writers(
    client: httpx.AsyncClient,
    user_id: int,
    tally: Tally,
    *,
    clients: int,
    stop: asyncio.Event,
    prefix: str,
    pause: float = 0.0,
) -> None:
    """``clients`` loops of POST an item, then GET it (then ``pause`` seconds), until ``stop``
    is set."""

    async def one(number: int) -> None:
        sent = 0
        while not stop.is_set():
            name = f"{prefix}-{number}-{sent}"
            sent += 1
            started = time.monotonic()
            try:
                response = await client.post(f"/users/{user_id}/items", json={"name": name})
            except httpx.HTTPError as error:
                tally.error(error)
                await asyncio.sleep(0.1)
                continue
            tally.record(response, time.monotonic() - started)
            if response.status_code == 201:
                tally.acknowledged.append(name)
                started = time.monotonic()
                try:
                    read = await client.get(f"/items/{response.json()['id']}")
                except httpx.HTTPError as error:
                    tally.error(error)
                    continue
                tally.record(read, time.monotonic() - started)
                if pause:
                    await asyncio.sleep(pause)
            else:
                await asyncio.sleep(0.1)

    await asyncio.gather(*(one(number) for number in range(clients)))


def http_client(base_url: str, clients: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=REQUEST_TIMEOUT,
        limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
    )


# -- a bare HTTP/1.1 client -------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def encode_request(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    keep_alive: bool = False,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if not keep_alive:
        lines.append("Connection: close")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def raw_request(
    port: int, request: bytes, *, timeout: float = REQUEST_TIMEOUT
) -> RawResponse:
    """Send ``request`` on a new connection and read the whole answer (until the server
    closes); `TimeoutError` after ``timeout`` seconds."""
    started = time.monotonic()
    data = await asyncio.wait_for(_exchange(port, request), timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = _parse_head(head)
    return RawResponse(status, headers, body, time.monotonic() - started)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    if not lines or len(lines[0].split()) < 2:
        raise ConnectionError(f"no HTTP answer ({len(head)} bytes)")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)
"""What a broken or refused connection raises (``ConnectionError`` is an ``OSError``)."""


class KeptAlive:
    """One client's kept-alive HTTP/1.1 connection: opened at the first request, reused,
    opened again after an error or a ``Connection: close``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, request: bytes, timeout: float = REQUEST_TIMEOUT) -> RawResponse:
        """Send ``request`` (made with ``keep_alive=True``) and read its answer."""
        started = time.monotonic()
        try:
            return await asyncio.wait_for(self._ask(request, started), timeout)
        except BaseException:
            self.close()
            raise

    async def _ask(self, request: bytes, started: float) -> RawResponse:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        writer.write(request)
        await writer.drain()
        status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return RawResponse(status, headers, body, time.monotonic() - started)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].transport.abort()
            self.streams = None


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def abandoned_request(port: int, request: bytes, wait: float) -> None:
    """Send ``request`` (or part of it), wait ``wait`` seconds, then close the socket without
    reading the answer: a client that gave up."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        await asyncio.sleep(wait)
    finally:
        writer.transport.abort()
