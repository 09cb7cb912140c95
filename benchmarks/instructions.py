"""Work per request that does not depend on the machine's load: instructions and round trips.

    python benchmarks/instructions.py                              # every PostgreSQL stack
    python benchmarks/instructions.py --stacks ceiling,sessionscope,fastpath

Each stack's app runs under one uvicorn worker inside ``valgrind --tool=callgrind``, with a
wire counter (a small TCP proxy) between it and PostgreSQL. After a warm-up of each endpoint
the script zeroes the counters (``callgrind_control -z``), sends ``--requests`` sequential
requests over one keep-alive connection, dumps the counters (``callgrind_control -d``) and
divides: instructions of the app process (every thread) per request, and round trips per
request (the server's ReadyForQuery messages: one per completed exchange, whatever the
driver pipelines before it). Sequential, because under concurrency the event loop's wake-ups
vary and so does the count; so measured, the same app repeats within about 1.5%, while its
requests/s on a shared machine can move by 40%.
``--concurrency N`` sends the measured requests from N connections at once instead, to
compare the work per request when requests interleave on the event loop.

Needs ``valgrind`` (``apt-get install valgrind``). Results go to a JSON file beside
``run.py``'s; ``--compare`` names the stack the ratios are taken to (the ORM ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http.client
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import STACKS, Stack, Target

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class WireCounter:
    """A TCP proxy to PostgreSQL that counts the server's ReadyForQuery messages."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.ready_for_query = 0
        self.encrypted = False
        self.listen_port = harness.free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        future.result(timeout=10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def reset(self) -> int:
        """Zero the count; returns the count before."""
        before, self.ready_for_query = self.ready_for_query, 0
        return before

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.listen_port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        # Replies of one byte (no length) the server owes to SSL / GSSAPI encryption requests.
        owed: list[int] = [0]
        await asyncio.gather(
            self._client_to_server(reader, server_writer, owed),
            self._server_to_client(server_reader, writer, owed),
            return_exceptions=True,
        )
        for stream in (writer, server_writer):
            stream.close()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, owed: list[int]
    ) -> None:
        try:
            # Untyped messages first: SSL/GSSAPI requests, then the startup message.
            while True:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                body = await reader.readexactly(length - 8)
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    owed[0] += 1
                writer.write(head + body)
                await writer.drain()
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    break
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, owed: list[int]
    ) -> None:
        try:
            while True:
                # The first byte decides: the answer to an encryption request (owed once the
                # request went through, so before its answer can arrive), or a message type.
                first = await reader.readexactly(1)
                if owed[0]:
                    owed[0] -= 1
                    writer.write(first)
                    if first in (b"S", b"G"):
                        # Encrypted from here on: nothing more to read.
                        self.encrypted = True
                        while data := await reader.read(65536):
                            writer.write(data)
                            await writer.drain()
                        return
                    continue
                head = first + await reader.readexactly(4)
                kind, length = first, struct.unpack("!i", head[1:])[0]
                body = await reader.readexactly(length - 4)
                if kind == b"Z":
                    self.ready_for_query += 1
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))


def _database_address(target: Target) -> tuple[str, int]:
    parts = urlsplit(target.sync_url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


@contextlib.contextmanager
def under_callgrind(
    stack: Stack, url: str, out_dir: Path, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = harness.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "sqlalchemy_"))}
    env["DATABASE_URL"] = url
    env.update(stack.env)
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_dir}/callgrind.out",
        *harness.uvicorn_command(stack, port),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=harness.HERE, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{stack.name} exited with {process.returncode}; see {log}")
            try:
                status, _ = request(port, "get", 1)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{stack.name} did not start under valgrind; see {log}")
            time.sleep(1)
        yield process, port
    finally:
        harness.stop(process, timeout=120)


_connections: dict[int, http.client.HTTPConnection] = {}


def request(port: int, endpoint: str, sequence: int) -> tuple[int, bytes]:
    connection = _connections.get(port)
    if connection is None:
        connection = _connections[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        return exchange(connection, endpoint, sequence)
    except (OSError, http.client.HTTPException):
        _connections.pop(port, None)
        connection.close()
        raise


def exchange(
    connection: http.client.HTTPConnection, endpoint: str, sequence: int
) -> tuple[int, bytes]:
    """One request of ``endpoint`` (a random item, or a new one named after ``sequence``)."""
    if endpoint == "get":
        connection.request("GET", f"/items/{random.randint(1, 10_000)}")
    else:
        connection.request(
            "POST", f"/items/?name=item-{sequence}&description=instructions", body=b""
        )
    response = connection.getresponse()
    return response.status, response.read()


def send(port: int, endpoint: str, total: int, concurrency: int, first: int) -> int:
    """Send ``total`` requests, from ``concurrency`` keep-alive connections at once; the
    number of non-2xx answers."""
    if concurrency == 1:
        return sum(not 200 <= request(port, endpoint, first + i + 1)[0] < 300 for i in range(total))
    lock = threading.Lock()
    numbers = iter(range(first + 1, first + total + 1))
    failures = [0]

    def connection() -> None:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while True:
                with lock:
                    sequence = next(numbers, None)
                if sequence is None:
                    return
                status, _ = exchange(client, endpoint, sequence)
                if not 200 <= status < 300:
                    with lock:
                        failures[0] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=connection) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures[0]


def callgrind_control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def dumped_instructions(out_dir: Path, before: set[Path]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = sorted(set(out_dir.glob("callgrind.out*")) - before)
        for path in new:
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind dump appeared in {out_dir}")


def measure(
    stack: Stack, target: Target, args: argparse.Namespace, work: Path
) -> dict[str, dict[str, float]]:
    host, port = _database_address(target)
    counter = WireCounter(host, port)
    counter.start()
    out_dir = work / stack.name
    out_dir.mkdir()
    results: dict[str, dict[str, float]] = {}
    try:
        url = _via(target.url_for(stack), counter.listen_port)
        with under_callgrind(stack, url, out_dir, work / f"{stack.name}.log") as (process, app):
            sequence = 0
            for endpoint in args.endpoints:
                for _ in range(args.warmup):
                    sequence += 1
                    request(app, endpoint, sequence)
            for endpoint in args.endpoints:
                before = set(out_dir.glob("callgrind.out*"))
                callgrind_control("-z", process.pid)
                counter.reset()
                failures = send(app, endpoint, args.requests, args.concurrency, sequence)
                sequence += args.requests
                trips = counter.reset()
                callgrind_control("-d", process.pid)
                instructions = dumped_instructions(out_dir, before)
                results[endpoint] = {
                    "instructions_per_request": instructions / args.requests,
                    "round_trips_per_request": trips / args.requests,
                    "non_2xx": failures,
                }
                print(
                    f"  {stack.name:26} {endpoint:4}"
                    f" {instructions / args.requests / 1e6:6.3f}M instructions/request"
                    f"  {trips / args.requests:5.2f} round trips/request  non-2xx {failures}",
                    flush=True,
                )
    finally:
        _connections.clear()
        counter.stop()
    if counter.encrypted:
        print(f"  {stack.name}: the connection was encrypted; round trips not counted")
        for row in results.values():
            row["round_trips_per_request"] = float("nan")
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [s.name for s in STACKS]
    parser.add_argument(
        "--stacks",
        type=lambda v: v.split(","),
        default=None,
        help="comma-separated subset of: " + ", ".join(names),
    )
    parser.add_argument("--endpoints", type=lambda v: v.split(","), default=["get", "post"])
    parser.add_argument("--requests", type=int, default=300, help="measured, per endpoint")
    parser.add_argument("--warmup", type=int, default=200, help="requests per endpoint before")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="connections sending the measured requests at once (default 1: sequential)",
    )
    parser.add_argument("--compare", default="ceiling", help="the stack ratios are taken to")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of every app (e.g. DATABASE_RECONNECT_RETRIES=0); repeatable",
    )
    parser.add_argument("--output", default=str(harness.HERE / ".results" / "instructions.json"))
    args = parser.parse_args()
    if args.stacks and not set(args.stacks) <= set(names):
        parser.error(f"unknown stacks {sorted(set(args.stacks) - set(names))}")
    return args


def main() -> None:
    args = parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed: `apt-get install valgrind`, then run again.")
    results_dir = harness.HERE / ".results"
    results_dir.mkdir(exist_ok=True)
    stacks = [s for s in STACKS if args.stacks is None or s.name in args.stacks]
    extra = tuple(tuple(item.split("=", 1)) for item in args.env)
    stacks = [dataclasses.replace(s, env=(*s.env, *extra)) for s in stacks]
    for venv in sorted({"core", *(s.venv for s in stacks)}):
        harness.ensure_venv(venv, results_dir / f"venv-{venv}.log")
    target = harness.postgres_target()
    harness.seed(target, create=True)
    random.seed(14)
    work = Path(tempfile.mkdtemp(prefix="sessionscope-callgrind-"))
    measured: dict[str, dict[str, dict[str, float]]] = {}
    for stack in stacks:
        harness.seed(target)
        print(f"{stack.name} (valgrind: slow to start)", flush=True)
        measured[stack.name] = measure(stack, target, args, work)
    rows = summarise(measured, args.compare)
    document = {
        "command": "python benchmarks/instructions.py " + " ".join(sys.argv[1:]),
        "requests": args.requests,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "results": rows,
    }
    Path(args.output).write_text(json.dumps(document, indent=1))
    print_table(rows, args.compare)
    print(f"\nresults: {args.output}; callgrind dumps: {work}")


def summarise(
    measured: dict[str, dict[str, dict[str, float]]], compare: str
) -> list[dict[str, Any]]:
    rows = []
    for name, endpoints in measured.items():
        for endpoint, row in endpoints.items():
            base = measured.get(compare, {}).get(endpoint)
            ratio = (
                row["instructions_per_request"] / base["instructions_per_request"] if base else None
            )
            rows.append(
                {
                    "stack": name,
                    "endpoint": endpoint,
                    "instructions_per_request": round(row["instructions_per_request"]),
                    "ratio_to_" + compare: round(ratio, 3) if ratio is not None else None,
                    "round_trips_per_request": round(row["round_trips_per_request"], 2),
                    "non_2xx": row["non_2xx"],
                }
            )
    return rows


def print_table(rows: list[dict[str, Any]], compare: str) -> None:
    print(f"\n{'stack':26} {'endpoint':8} {'instr/req':>10} {'/ ' + compare:>12} {'trips/req':>9}")
    for row in sorted(rows, key=lambda r: (r["endpoint"], r["instructions_per_request"])):
        ratio = row["ratio_to_" + compare]
        print(
            f"{row['stack']:26} {row['endpoint']:8} {row['instructions_per_request'] / 1e6:9.3f}M"
            f" {'' if ratio is None else f'{ratio:.3f}':>12} {row['round_trips_per_request']:9.2f}"
        )


if __name__ == "__main__":
    main()
