"""Raw-socket clients that hang up mid-request, as impatient real clients do."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


async def abandon_request(base_url: str, path: str, *, after: float, reset: bool) -> None:
    """Send ``GET path`` and close the socket ``after`` seconds later, before the response:
    a client that gave up. ``reset`` closes with RST (SO_LINGER 0) instead of FIN."""
    host, port = base_url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        await asyncio.sleep(after)
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        await _close(writer)


async def abandon_stream(base_url: str, path: str) -> bytes:
    """Send ``GET path``, read the head and the first bytes of the body, then hang up."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=20)
        first = await asyncio.wait_for(reader.read(16), timeout=20)
    finally:
        # Closed on a failure too (a read that timed out): no socket is left to the collector.
        await _close(writer)
    return head + first


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
