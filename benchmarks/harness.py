"""Shared machinery of the benchmark scripts: venvs, databases, app servers and wrk.

Standard library only, so the runner works with any Python 3.10+; everything that imports
SQLAlchemy or a web framework runs in a venv of its own, created from the pinned files in
``requirements/`` (the integrations pin conflicting versions of FastAPI and asyncpg).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENVS = HERE / ".venvs"
REQUIREMENTS = HERE / "requirements"

POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_DATABASE = os.environ.get("BENCH_POSTGRES_DATABASE", "bench")


@dataclass(frozen=True)
class Stack:
    """One implementation of the items service."""

    name: str
    module: str
    venv: str
    driver: str  # "async": DATABASE_URL names the async driver; "sync": the sync one
    postgres_only: bool = False
    sessionscope: bool = False
    env: tuple[tuple[str, str], ...] = ()  # extra environment of its server


OBSERVED_ENV = (
    # Every visibility feature on (docs/observability.md), as the overhead measurement wants.
    ("DATABASE_METRICS", "true"),
    ("DATABASE_QUERY_STATS", "true"),
    ("DATABASE_SERVER_TIMING", "true"),
    ("DATABASE_QUERY_BUDGET", "20"),
    # Checked on every statement; above the wall time of any statement of a busy run, so that
    # the measurement is of the check, not of log lines.
    ("DATABASE_SLOW_QUERY_THRESHOLD", "5"),
    ("DATABASE_PROMETHEUS", "true"),
    ("DATABASE_OPENTELEMETRY", "true"),
    # A traced app (an SDK provider, FastAPI's own request spans): the unit spans nest under
    # the request's, as in production. The unobserved twin is traced the same way, so that
    # the difference is sessionscope's features alone.
    ("BENCH_OTEL_SDK", "1"),
    ("BENCH_FASTAPI_TRACING", "1"),
)
UNOBSERVED_ENV = (
    ("DATABASE_METRICS", "false"),
    ("BENCH_OTEL_SDK", "1"),
    ("BENCH_FASTAPI_TRACING", "1"),
)


STACKS = (
    Stack("sessionscope", "items_app", "core", "async", sessionscope=True),
    Stack("sessionscope-sync", "items_sessionscope_sync", "core", "async", sessionscope=True),
    Stack("ceiling", "items_ceiling", "core", "async"),
    Stack("ceiling-sync", "items_ceiling_sync", "core", "async"),
    Stack("fastpath", "items_fastpath", "core", "async", postgres_only=True, sessionscope=True),
    Stack(
        "sessionscope-observed", "items_app", "core", "async", sessionscope=True, env=OBSERVED_ENV
    ),
    Stack(
        "sessionscope-unobserved",
        "items_app",
        "core",
        "async",
        sessionscope=True,
        env=UNOBSERVED_ENV,
    ),
    Stack("seed-get_db", "items_seed", "core", "sync"),
    Stack("handwritten-async", "items_handwritten", "core", "async"),
    Stack("fastapi-sqla", "items_fastapi_sqla", "fastapi-sqla", "async"),
    Stack("advanced-alchemy", "items_advanced_alchemy", "advanced-alchemy", "async"),
    Stack(
        "fastapi-async-sqlalchemy",
        "items_fastapi_async_sqlalchemy",
        "fastapi-async-sqlalchemy",
        "async",
    ),
    Stack("bare-asyncpg", "items_bare", "core", "async", postgres_only=True),
)


# -- venvs -----------------------------------------------------------------------------------


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, log: Path) -> Path:
    """Create (or refresh, when its requirement file changed) the benchmark venv ``name``."""
    requirements = REQUIREMENTS / f"{name}.txt"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    marker = VENVS / name / ".requirements-sha256"
    python = venv_python(name)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        # The core venv installs the project editable: it always runs the worktree's code.
        return python
    print(f"  creating venv {name} (log: {log})", flush=True)
    shutil.rmtree(VENVS / name, ignore_errors=True)
    with log.open("w") as out:
        subprocess.run(
            [sys.executable, "-m", "venv", str(VENVS / name)], check=True, stdout=out, stderr=out
        )
        command = [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)]
        if name == "core":
            command += ["-e", str(REPO)]
        subprocess.run(command, check=True, stdout=out, stderr=out)
    marker.write_text(wanted)
    return python


def versions(name: str, dists: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [str(venv_python(name)), "-c", code, *dists], capture_output=True, text=True, check=True
    )
    import json

    return dict(json.loads(result.stdout))


# -- databases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The database the stacks run against."""

    backend: str
    async_url: str
    sync_url: str

    def url_for(self, stack: Stack) -> str:
        return self.async_url if stack.driver == "async" else self.sync_url


def postgres_target() -> Target:
    core = str(venv_python("core"))
    code = (
        "import sys\n"
        "from sqlalchemy import create_engine, text\n"
        "engine = create_engine(sys.argv[1], isolation_level='AUTOCOMMIT')\n"
        "with engine.connect() as c:\n"
        "    if c.execute(text('SELECT 1 FROM pg_database WHERE datname = :d'),"
        " {'d': sys.argv[2]}).first() is None:\n"
        "        c.execute(text(f'CREATE DATABASE \"{sys.argv[2]}\"'))\n"
    )
    subprocess.run([core, "-c", code, POSTGRES_ADMIN_URL, POSTGRES_DATABASE], check=True)
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1]
    return Target(
        "postgres",
        f"postgresql+asyncpg://{base}/{POSTGRES_DATABASE}",
        f"postgresql+psycopg://{base}/{POSTGRES_DATABASE}",
    )


def sqlite_target(directory: Path) -> Target:
    path = directory / "bench.db"
    return Target("sqlite", f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}")


def seed(target: Target, *, create: bool = False) -> None:
    command = [str(venv_python("core")), "seed_items.py", target.sync_url]
    if create:
        command.append("--create")
    subprocess.run(command, check=True, cwd=HERE)


# -- app servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve(
    stack: Stack, target: Target, log: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run ``stack`` under one uvicorn worker until the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "sqlalchemy_"))}
    env["DATABASE_URL"] = target.url_for(stack)
    env.update(stack.env)
    env.update(extra_env or {})
    with log.open("ab") as out:
        process = subprocess.Popen(
            uvicorn_command(stack, port), cwd=HERE, env=env, stdout=out, stderr=out
        )
    server = Server(process, port)
    try:
        _wait_ready(server, log)
        yield server
    finally:
        stop(process)


def uvicorn_command(stack: Stack, port: int) -> list[str]:
    """The command that serves ``stack`` with one uvicorn worker on ``port``."""
    return [
        str(venv_python(stack.venv)),
        "-m",
        "uvicorn",
        f"{stack.module}:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop a server as Ctrl-C does (its lifespan ends), killing it if it will not."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(server: Server, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the app exited with {server.process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{server.url}/items/1", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the app did not answer GET /items/1 within {timeout}s; see {log}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used: per-request cost that, unlike requests/s,
    barely moves when other work competes for the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- wrk -------------------------------------------------------------------------------------

LUA = {
    "get": """
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", "/items/" .. math.random(1, 10000))
end
""",
    "post": """
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/items/?name=item-" .. counter .. "&description=benchmark")
end
""",
}


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit(
            "wrk is not installed: the benchmarks drive the apps with it. Install it with "
            "`apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`, then run again."
        )
    return path


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    timeouts: int


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unparseable latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    def number(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, output)
        if match is None:
            if default is None:
                raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
            return default
        return match.group(1)

    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    connect_read_write = sum(int(socket.group(i)) for i in (1, 2, 3)) if socket else 0
    timeouts = int(socket.group(4)) if socket else 0
    return WrkResult(
        requests_per_second=float(number(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(number(r"\n\s+50%\s+(\S+)")),
        p99_ms=_ms(number(r"\n\s+99%\s+(\S+)")),
        requests=int(number(r"(\d+) requests in")),
        non_2xx=int(number(r"Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=connect_read_write,
        timeouts=timeouts,
    )


def run_wrk(
    url: str,
    script: str,
    *,
    connections: int,
    duration: float,
    timeout: float = 5.0,
    env: dict[str, str] | None = None,
) -> WrkResult:
    threads = min(2, connections)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(LUA[script])
    try:
        result = subprocess.run(
            [
                require_wrk(),
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                f"--timeout={round(timeout)}s",
                "--latency",
                "-s",
                lua.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **(env or {})},
            timeout=duration + timeout + 60,
        )
    finally:
        os.unlink(lua.name)
    return parse_wrk(result.stdout)


# -- a count-bounded load generator ----------------------------------------------------------


@dataclass(frozen=True)
class CountedLoad:
    requests: int
    non_2xx: int
    seconds: float


def send_requests(port: int, total: int, connections: int = 64) -> CountedLoad:
    """Send exactly ``total`` requests, alternating GET and POST, over keep-alive connections.

    wrk runs for a duration, not a count; this minimal HTTP/1.1 client (no parsing beyond the
    status line and Content-Length) keeps its own CPU cost low.
    """
    return asyncio.run(_send_requests(port, total, connections))


async def _send_requests(port: int, total: int, connections: int) -> CountedLoad:
    remaining = total
    non_2xx = 0

    async def connection_loop(index: int) -> None:
        nonlocal remaining, non_2xx
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sequence = index
        try:
            while remaining > 0:
                remaining -= 1
                sequence += connections
                if sequence % 2:
                    line = f"GET /items/{random.randint(1, 10_000)} HTTP/1.1"
                else:
                    line = f"POST /items/?name=item-{sequence}&description=memory HTTP/1.1"
                request = f"{line}\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
                writer.write(request.encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for header in head.split(b"\r\n"):
                    if header.lower().startswith(b"content-length:"):
                        length = int(header.split(b":", 1)[1])
                await reader.readexactly(length)
                if not 200 <= status < 300:
                    non_2xx += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection_loop(i) for i in range(connections)))
    return CountedLoad(total, non_2xx, time.monotonic() - started)
